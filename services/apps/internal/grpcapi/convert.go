package grpcapi

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func appPB(a apps.App) *appsv1.App {
	return &appsv1.App{
		AppId: a.ID.String(), Name: a.Name, Description: a.Description, Visibility: appsv1.Visibility(a.Visibility),
		CurrentVersion: a.CurrentVersion, CreateTime: ts(a.Created), UpdateTime: ts(a.Updated),
		Role: appsv1.Role(a.Role), Published: a.Published,
	}
}

func promptPB(p apps.Prompt) *appsv1.Prompt {
	return &appsv1.Prompt{PromptId: p.ID.String(), Seq: p.Seq, Kind: appsv1.Prompt_Kind(p.Kind), Text: p.Text,
		CreateTime: ts(p.Created), Author: p.Author}
}

func referencePB(r apps.Reference) *appsv1.Reference {
	return &appsv1.Reference{ReferenceId: r.ID.String(), Filename: r.Filename, ContentType: r.ContentType,
		SizeBytes: r.Size, Sha256: r.SHA256, CreateTime: ts(r.Created)}
}

func filePB(f apps.File) *appsv1.File {
	return &appsv1.File{Path: f.Path, ContentType: f.ContentType, Content: f.Content, SizeBytes: f.Size}
}

func filesPB(fs []apps.File) []*appsv1.File {
	out := make([]*appsv1.File, len(fs))
	for i, f := range fs {
		out[i] = filePB(f)
	}
	return out
}

func versionPB(v apps.Version) *appsv1.Version {
	return &appsv1.Version{Version: v.Version, Files: filesPB(v.Files), CreateTime: ts(v.Created), Author: v.Author}
}

func listingPB(l apps.Listing) *appsv1.Listing {
	return &appsv1.Listing{ListingId: l.ID.String(), Name: l.Name, Description: l.Description,
		PublishTime: ts(l.Published), Files: filesPB(l.Files), Url: l.URL}
}
