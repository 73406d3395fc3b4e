package k8s

// Strict transcriptions of the custom resources the manifests use. cert-manager's and
// CloudNativePG's Go modules are not served for this toolchain, so each type below is written
// from the published v1 API (cert-manager.io/v1, postgresql.cnpg.io/v1 for CloudNativePG 1.27,
// barmancloud.cnpg.io/v1 for the Barman Cloud plugin 0.6+, snapshot.storage.k8s.io/v1 for CSI
// volume snapshots) with the same JSON field names.
// They hold the fields this repository may use; a field outside them fails decoding, as it
// would if misspelt. validate() adds the API's own constraints (enums, required fields,
// exclusive choices) that matter here.

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// --- cert-manager.io/v1 -------------------------------------------------------------------

// Certificate is cert-manager.io/v1 Certificate.
type Certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              CertificateSpec `json:"spec"`
}

// CertificateSpec mirrors cert-manager's CertificateSpec.
type CertificateSpec struct {
	Subject                 *X509Subject               `json:"subject,omitempty"`
	LiteralSubject          string                     `json:"literalSubject,omitempty"`
	CommonName              string                     `json:"commonName,omitempty"`
	Duration                *metav1.Duration           `json:"duration,omitempty"`
	RenewBefore             *metav1.Duration           `json:"renewBefore,omitempty"`
	RenewBeforePercentage   *int32                     `json:"renewBeforePercentage,omitempty"`
	DNSNames                []string                   `json:"dnsNames,omitempty"`
	IPAddresses             []string                   `json:"ipAddresses,omitempty"`
	URIs                    []string                   `json:"uris,omitempty"`
	EmailAddresses          []string                   `json:"emailAddresses,omitempty"`
	SecretName              string                     `json:"secretName"`
	SecretTemplate          *CertificateSecretTemplate `json:"secretTemplate,omitempty"`
	IssuerRef               ObjectReference            `json:"issuerRef"`
	IsCA                    bool                       `json:"isCA,omitempty"`
	Usages                  []string                   `json:"usages,omitempty"`
	PrivateKey              *CertificatePrivateKey     `json:"privateKey,omitempty"`
	SignatureAlgorithm      string                     `json:"signatureAlgorithm,omitempty"`
	EncodeUsagesInRequest   *bool                      `json:"encodeUsagesInRequest,omitempty"`
	RevisionHistoryLimit    *int32                     `json:"revisionHistoryLimit,omitempty"`
	AdditionalOutputFormats []CertificateOutputFormat  `json:"additionalOutputFormats,omitempty"`
}

// X509Subject mirrors cert-manager's X509Subject.
type X509Subject struct {
	Organizations       []string `json:"organizations,omitempty"`
	Countries           []string `json:"countries,omitempty"`
	OrganizationalUnits []string `json:"organizationalUnits,omitempty"`
	Localities          []string `json:"localities,omitempty"`
	Provinces           []string `json:"provinces,omitempty"`
	StreetAddresses     []string `json:"streetAddresses,omitempty"`
	PostalCodes         []string `json:"postalCodes,omitempty"`
	SerialNumber        string   `json:"serialNumber,omitempty"`
}

// CertificateSecretTemplate mirrors cert-manager's CertificateSecretTemplate.
type CertificateSecretTemplate struct {
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// ObjectReference mirrors cert-manager's issuer ObjectReference.
type ObjectReference struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

// CertificatePrivateKey mirrors cert-manager's CertificatePrivateKey.
type CertificatePrivateKey struct {
	RotationPolicy string `json:"rotationPolicy,omitempty"`
	Encoding       string `json:"encoding,omitempty"`
	Algorithm      string `json:"algorithm,omitempty"`
	Size           int    `json:"size,omitempty"`
}

// CertificateOutputFormat mirrors cert-manager's CertificateAdditionalOutputFormat.
type CertificateOutputFormat struct {
	Type string `json:"type"`
}

// certManagerUsages is cert-manager's KeyUsage enum.
var certManagerUsages = []string{
	"signing", "digital signature", "content commitment", "key encipherment", "key agreement",
	"data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
	"server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
	"ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
}

func (c *Certificate) validate() error {
	s := c.Spec
	var errs []error
	if s.SecretName == "" {
		errs = append(errs, errors.New("spec.secretName is required"))
	}
	if s.IssuerRef.Name == "" {
		errs = append(errs, errors.New("spec.issuerRef.name is required"))
	}
	if s.IssuerRef.Kind != "" && s.IssuerRef.Kind != "Issuer" && s.IssuerRef.Kind != "ClusterIssuer" {
		errs = append(errs, fmt.Errorf("spec.issuerRef.kind %q", s.IssuerRef.Kind))
	}
	if s.CommonName == "" && s.LiteralSubject == "" && len(s.DNSNames)+len(s.URIs)+len(s.IPAddresses)+len(s.EmailAddresses) == 0 {
		errs = append(errs, errors.New("at least one of commonName, literalSubject, dnsNames, uris, ipAddresses or emailAddresses"))
	}
	for _, u := range s.Usages {
		if !slices.Contains(certManagerUsages, u) {
			errs = append(errs, fmt.Errorf("spec.usages: unknown usage %q", u))
		}
	}
	if k := s.PrivateKey; k != nil {
		if k.RotationPolicy != "" && k.RotationPolicy != "Never" && k.RotationPolicy != "Always" {
			errs = append(errs, fmt.Errorf("privateKey.rotationPolicy %q", k.RotationPolicy))
		}
		if k.Encoding != "" && k.Encoding != "PKCS1" && k.Encoding != "PKCS8" {
			errs = append(errs, fmt.Errorf("privateKey.encoding %q", k.Encoding))
		}
		switch k.Algorithm {
		case "", "RSA":
		case "ECDSA":
			if k.Size != 0 && k.Size != 256 && k.Size != 384 && k.Size != 521 {
				errs = append(errs, fmt.Errorf("privateKey.size %d is not an ECDSA curve", k.Size))
			}
		case "Ed25519":
		default:
			errs = append(errs, fmt.Errorf("privateKey.algorithm %q", k.Algorithm))
		}
	}
	if s.Duration != nil && s.Duration.Duration.Hours() < 1 {
		errs = append(errs, fmt.Errorf("spec.duration %s is below cert-manager's one-hour minimum", s.Duration.Duration))
	}
	if s.Duration != nil && s.RenewBefore != nil && s.RenewBefore.Duration >= s.Duration.Duration {
		errs = append(errs, errors.New("spec.renewBefore must be shorter than spec.duration"))
	}
	return errors.Join(errs...)
}

// Issuer is cert-manager.io/v1 Issuer or ClusterIssuer (the same spec).
type Issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              IssuerSpec `json:"spec"`
}

// IssuerSpec holds the issuer types this repository uses; ACME, Vault and Venafi issuers are
// not transcribed and fail decoding.
type IssuerSpec struct {
	SelfSigned *SelfSignedIssuer `json:"selfSigned,omitempty"`
	CA         *CAIssuer         `json:"ca,omitempty"`
}

// SelfSignedIssuer mirrors cert-manager's SelfSignedIssuer.
type SelfSignedIssuer struct {
	CRLDistributionPoints []string `json:"crlDistributionPoints,omitempty"`
}

// CAIssuer mirrors cert-manager's CAIssuer.
type CAIssuer struct {
	SecretName             string   `json:"secretName"`
	CRLDistributionPoints  []string `json:"crlDistributionPoints,omitempty"`
	OCSPServers            []string `json:"ocspServers,omitempty"`
	IssuingCertificateURLs []string `json:"issuingCertificateURLs,omitempty"`
}

func (i *Issuer) validate() error {
	n := 0
	if i.Spec.SelfSigned != nil {
		n++
	}
	if i.Spec.CA != nil {
		n++
		if i.Spec.CA.SecretName == "" {
			return errors.New("spec.ca.secretName is required")
		}
	}
	if n != 1 {
		return fmt.Errorf("exactly one issuer type, got %d", n)
	}
	return nil
}

// --- postgresql.cnpg.io/v1 -----------------------------------------------------------------

// PGCluster is postgresql.cnpg.io/v1 Cluster.
type PGCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PGClusterSpec `json:"spec"`
}

// PGClusterSpec mirrors CloudNativePG's ClusterSpec (the fields used here and their neighbours).
type PGClusterSpec struct {
	Description               string                            `json:"description,omitempty"`
	InheritedMetadata         *PGEmbeddedObjectMetadata         `json:"inheritedMetadata,omitempty"`
	ImageName                 string                            `json:"imageName,omitempty"`
	ImagePullPolicy           corev1.PullPolicy                 `json:"imagePullPolicy,omitempty"`
	Instances                 int                               `json:"instances"`
	MinSyncReplicas           int                               `json:"minSyncReplicas,omitempty"`
	MaxSyncReplicas           int                               `json:"maxSyncReplicas,omitempty"`
	PostgresConfiguration     PGPostgresConfiguration           `json:"postgresql,omitempty"`
	Bootstrap                 *PGBootstrap                      `json:"bootstrap,omitempty"`
	Certificates              *PGCertificatesConfiguration      `json:"certificates,omitempty"`
	EnableSuperuserAccess     *bool                             `json:"enableSuperuserAccess,omitempty"`
	SuperuserSecret           *PGLocalObjectReference           `json:"superuserSecret,omitempty"`
	StorageConfiguration      PGStorageConfiguration            `json:"storage,omitempty"`
	WalStorage                *PGStorageConfiguration           `json:"walStorage,omitempty"`
	StartDelay                int32                             `json:"startDelay,omitempty"`
	StopDelay                 int32                             `json:"stopDelay,omitempty"`
	SmartShutdownTimeout      *int32                            `json:"smartShutdownTimeout,omitempty"`
	SwitchoverDelay           int32                             `json:"switchoverDelay,omitempty"`
	FailoverDelay             int32                             `json:"failoverDelay,omitempty"`
	Affinity                  PGAffinityConfiguration           `json:"affinity,omitempty"`
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	Resources                 corev1.ResourceRequirements       `json:"resources,omitempty"`
	EphemeralVolumesSizeLimit *PGEphemeralVolumesSizeLimit      `json:"ephemeralVolumesSizeLimit,omitempty"`
	PriorityClassName         string                            `json:"priorityClassName,omitempty"`
	PrimaryUpdateStrategy     string                            `json:"primaryUpdateStrategy,omitempty"`
	PrimaryUpdateMethod       string                            `json:"primaryUpdateMethod,omitempty"`
	ExternalClusters          []PGExternalCluster               `json:"externalClusters,omitempty"`
	LogLevel                  string                            `json:"logLevel,omitempty"`
	Managed                   *PGManagedConfiguration           `json:"managed,omitempty"`
	EnablePDB                 *bool                             `json:"enablePDB,omitempty"`
	Plugins                   []PGPluginConfiguration           `json:"plugins,omitempty"`
	Backup                    *PGBackupConfiguration            `json:"backup,omitempty"`
}

// PGBackupConfiguration mirrors CloudNativePG's BackupConfiguration: the in-tree Barman object
// store (WAL archive and base backups) and volume snapshots. No manifest here uses it (forge-pg
// backs up through the plugin); it is transcribed so that the checks can see one added.
type PGBackupConfiguration struct {
	VolumeSnapshot    *PGVolumeSnapshotConfiguration `json:"volumeSnapshot,omitempty"`
	BarmanObjectStore *BarmanConfiguration           `json:"barmanObjectStore,omitempty"`
	RetentionPolicy   string                         `json:"retentionPolicy,omitempty"`
	Target            string                         `json:"target,omitempty"`
}

// PGVolumeSnapshotConfiguration mirrors CloudNativePG's VolumeSnapshotConfiguration.
type PGVolumeSnapshotConfiguration struct {
	Labels                 map[string]string `json:"labels,omitempty"`
	Annotations            map[string]string `json:"annotations,omitempty"`
	ClassName              string            `json:"className,omitempty"`
	WalClassName           string            `json:"walClassName,omitempty"`
	SnapshotOwnerReference string            `json:"snapshotOwnerReference,omitempty"`
	Online                 *bool             `json:"online,omitempty"`
}

// PGEmbeddedObjectMetadata mirrors CloudNativePG's EmbeddedObjectMetadata.
type PGEmbeddedObjectMetadata struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PGPostgresConfiguration mirrors CloudNativePG's PostgresConfiguration.
type PGPostgresConfiguration struct {
	Parameters  map[string]string    `json:"parameters,omitempty"`
	Synchronous *PGSynchronousConfig `json:"synchronous,omitempty"`
	PgHBA       []string             `json:"pg_hba,omitempty"`
	PgIdent     []string             `json:"pg_ident,omitempty"`
}

// PGSynchronousConfig mirrors CloudNativePG's SynchronousReplicaConfiguration.
type PGSynchronousConfig struct {
	Method                     string   `json:"method"`
	Number                     int      `json:"number"`
	MaxStandbyNamesFromCluster *int     `json:"maxStandbyNamesFromCluster,omitempty"`
	StandbyNamesPre            []string `json:"standbyNamesPre,omitempty"`
	StandbyNamesPost           []string `json:"standbyNamesPost,omitempty"`
	DataDurability             string   `json:"dataDurability,omitempty"`
}

// PGBootstrap mirrors CloudNativePG's BootstrapConfiguration.
type PGBootstrap struct {
	InitDB   *PGBootstrapInitDB   `json:"initdb,omitempty"`
	Recovery *PGBootstrapRecovery `json:"recovery,omitempty"`
}

// PGBootstrapInitDB mirrors CloudNativePG's BootstrapInitDB.
type PGBootstrapInitDB struct {
	Database               string                  `json:"database,omitempty"`
	Owner                  string                  `json:"owner,omitempty"`
	Secret                 *PGLocalObjectReference `json:"secret,omitempty"`
	Options                []string                `json:"options,omitempty"`
	DataChecksums          *bool                   `json:"dataChecksums,omitempty"`
	Encoding               string                  `json:"encoding,omitempty"`
	LocaleCollate          string                  `json:"localeCollate,omitempty"`
	LocaleCType            string                  `json:"localeCType,omitempty"`
	Locale                 string                  `json:"locale,omitempty"`
	WalSegmentSize         int                     `json:"walSegmentSize,omitempty"`
	PostInitSQL            []string                `json:"postInitSQL,omitempty"`
	PostInitApplicationSQL []string                `json:"postInitApplicationSQL,omitempty"`
	PostInitTemplateSQL    []string                `json:"postInitTemplateSQL,omitempty"`
}

// PGBootstrapRecovery mirrors CloudNativePG's BootstrapRecovery.
type PGBootstrapRecovery struct {
	Source         string                  `json:"source,omitempty"`
	Database       string                  `json:"database,omitempty"`
	Owner          string                  `json:"owner,omitempty"`
	Secret         *PGLocalObjectReference `json:"secret,omitempty"`
	RecoveryTarget *PGRecoveryTarget       `json:"recoveryTarget,omitempty"`
}

// PGRecoveryTarget mirrors CloudNativePG's RecoveryTarget.
type PGRecoveryTarget struct {
	BackupID        string `json:"backupID,omitempty"`
	TargetTLI       string `json:"targetTLI,omitempty"`
	TargetXID       string `json:"targetXID,omitempty"`
	TargetName      string `json:"targetName,omitempty"`
	TargetLSN       string `json:"targetLSN,omitempty"`
	TargetTime      string `json:"targetTime,omitempty"`
	TargetImmediate *bool  `json:"targetImmediate,omitempty"`
	Exclusive       *bool  `json:"exclusive,omitempty"`
}

// PGCertificatesConfiguration mirrors CloudNativePG's CertificatesConfiguration.
type PGCertificatesConfiguration struct {
	ServerCASecret       string   `json:"serverCASecret,omitempty"`
	ServerTLSSecret      string   `json:"serverTLSSecret,omitempty"`
	ReplicationTLSSecret string   `json:"replicationTLSSecret,omitempty"`
	ClientCASecret       string   `json:"clientCASecret,omitempty"`
	ServerAltDNSNames    []string `json:"serverAltDNSNames,omitempty"`
}

// PGLocalObjectReference mirrors CloudNativePG's LocalObjectReference.
type PGLocalObjectReference struct {
	Name string `json:"name"`
}

// PGStorageConfiguration mirrors CloudNativePG's StorageConfiguration.
type PGStorageConfiguration struct {
	StorageClass       *string `json:"storageClass,omitempty"`
	Size               string  `json:"size,omitempty"`
	ResizeInUseVolumes *bool   `json:"resizeInUseVolumes,omitempty"`
}

// PGAffinityConfiguration mirrors CloudNativePG's AffinityConfiguration.
type PGAffinityConfiguration struct {
	EnablePodAntiAffinity *bool               `json:"enablePodAntiAffinity,omitempty"`
	TopologyKey           string              `json:"topologyKey,omitempty"`
	NodeSelector          map[string]string   `json:"nodeSelector,omitempty"`
	Tolerations           []corev1.Toleration `json:"tolerations,omitempty"`
	PodAntiAffinityType   string              `json:"podAntiAffinityType,omitempty"`
}

// PGEphemeralVolumesSizeLimit mirrors CloudNativePG's EphemeralVolumesSizeLimitConfiguration.
type PGEphemeralVolumesSizeLimit struct {
	Shm           string `json:"shm,omitempty"`
	TemporaryData string `json:"temporaryData,omitempty"`
}

// PGExternalCluster mirrors CloudNativePG's ExternalCluster (the plugin form only).
type PGExternalCluster struct {
	Name   string                 `json:"name"`
	Plugin *PGPluginConfiguration `json:"plugin,omitempty"`
}

// PGManagedConfiguration mirrors CloudNativePG's ManagedConfiguration.
type PGManagedConfiguration struct {
	Roles []PGRoleConfiguration `json:"roles,omitempty"`
}

// PGRoleConfiguration mirrors CloudNativePG's RoleConfiguration.
type PGRoleConfiguration struct {
	Name            string                  `json:"name"`
	Comment         string                  `json:"comment,omitempty"`
	Ensure          string                  `json:"ensure,omitempty"`
	PasswordSecret  *PGLocalObjectReference `json:"passwordSecret,omitempty"`
	ConnectionLimit *int64                  `json:"connectionLimit,omitempty"`
	ValidUntil      *metav1.Time            `json:"validUntil,omitempty"`
	InRoles         []string                `json:"inRoles,omitempty"`
	Inherit         *bool                   `json:"inherit,omitempty"`
	DisablePassword bool                    `json:"disablePassword,omitempty"`
	Superuser       bool                    `json:"superuser,omitempty"`
	CreateDB        bool                    `json:"createdb,omitempty"`
	CreateRole      bool                    `json:"createrole,omitempty"`
	Login           bool                    `json:"login,omitempty"`
	Replication     bool                    `json:"replication,omitempty"`
	BypassRLS       bool                    `json:"bypassrls,omitempty"`
}

// PGPluginConfiguration mirrors CloudNativePG's PluginConfiguration.
type PGPluginConfiguration struct {
	Name          string            `json:"name"`
	Enabled       *bool             `json:"enabled,omitempty"`
	IsWALArchiver *bool             `json:"isWALArchiver,omitempty"`
	Parameters    map[string]string `json:"parameters,omitempty"`
}

func (c *PGCluster) validate() error {
	s := c.Spec
	var errs []error
	if s.Instances < 1 {
		errs = append(errs, errors.New("spec.instances must be at least 1"))
	}
	if s.StorageConfiguration.Size == "" {
		errs = append(errs, errors.New("spec.storage.size is required"))
	}
	if b := s.Bootstrap; b != nil && b.InitDB != nil && b.Recovery != nil {
		errs = append(errs, errors.New("spec.bootstrap: only one of initdb and recovery"))
	}
	if b := s.Bootstrap; b != nil && b.Recovery != nil {
		if !slices.ContainsFunc(s.ExternalClusters, func(e PGExternalCluster) bool { return e.Name == b.Recovery.Source }) {
			errs = append(errs, fmt.Errorf("spec.bootstrap.recovery.source %q is not an external cluster", b.Recovery.Source))
		}
	}
	if sy := s.PostgresConfiguration.Synchronous; sy != nil {
		if sy.Method != "any" && sy.Method != "first" {
			errs = append(errs, fmt.Errorf("postgresql.synchronous.method %q", sy.Method))
		}
		if sy.DataDurability != "" && sy.DataDurability != "required" && sy.DataDurability != "preferred" {
			errs = append(errs, fmt.Errorf("postgresql.synchronous.dataDurability %q", sy.DataDurability))
		}
		if sy.Number < 1 || sy.Number >= s.Instances {
			errs = append(errs, fmt.Errorf("postgresql.synchronous.number %d must be in [1, instances)", sy.Number))
		}
	}
	if t := s.Affinity.PodAntiAffinityType; t != "" && t != "preferred" && t != "required" {
		errs = append(errs, fmt.Errorf("affinity.podAntiAffinityType %q", t))
	}
	if p := s.PrimaryUpdateStrategy; p != "" && p != "unsupervised" && p != "supervised" {
		errs = append(errs, fmt.Errorf("primaryUpdateStrategy %q", p))
	}
	archivers := 0
	for _, p := range s.Plugins {
		if p.IsWALArchiver != nil && *p.IsWALArchiver {
			archivers++
		}
	}
	if archivers > 1 {
		errs = append(errs, errors.New("at most one WAL archiver plugin"))
	}
	if s.Managed != nil {
		seen := map[string]bool{}
		for _, r := range s.Managed.Roles {
			if r.Ensure != "" && r.Ensure != "present" && r.Ensure != "absent" {
				errs = append(errs, fmt.Errorf("role %s: ensure %q", r.Name, r.Ensure))
			}
			if seen[r.Name] {
				errs = append(errs, fmt.Errorf("role %s declared twice", r.Name))
			}
			seen[r.Name] = true
		}
	}
	return errors.Join(errs...)
}

// PGDatabase is postgresql.cnpg.io/v1 Database.
type PGDatabase struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PGDatabaseSpec `json:"spec"`
}

// PGDatabaseSpec mirrors CloudNativePG's DatabaseSpec.
type PGDatabaseSpec struct {
	ClusterRef       PGLocalObjectReference `json:"cluster"`
	Ensure           string                 `json:"ensure,omitempty"`
	Name             string                 `json:"name"`
	Owner            string                 `json:"owner"`
	Template         string                 `json:"template,omitempty"`
	Encoding         string                 `json:"encoding,omitempty"`
	AllowConnections *bool                  `json:"allowConnections,omitempty"`
	ConnectionLimit  *int                   `json:"connectionLimit,omitempty"`
	Tablespace       string                 `json:"tablespace,omitempty"`
	ReclaimPolicy    string                 `json:"databaseReclaimPolicy,omitempty"`
}

func (d *PGDatabase) validate() error {
	if d.Spec.ClusterRef.Name == "" || d.Spec.Name == "" || d.Spec.Owner == "" {
		return errors.New("spec.cluster.name, spec.name and spec.owner are required")
	}
	if p := d.Spec.ReclaimPolicy; p != "" && p != "retain" && p != "delete" {
		return fmt.Errorf("databaseReclaimPolicy %q", p)
	}
	return nil
}

// PGScheduledBackup is postgresql.cnpg.io/v1 ScheduledBackup.
type PGScheduledBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PGScheduledBackupSpec `json:"spec"`
}

// PGScheduledBackupSpec mirrors CloudNativePG's ScheduledBackupSpec.
type PGScheduledBackupSpec struct {
	Suspend              *bool                  `json:"suspend,omitempty"`
	Immediate            *bool                  `json:"immediate,omitempty"`
	Schedule             string                 `json:"schedule"`
	Cluster              PGLocalObjectReference `json:"cluster"`
	BackupOwnerReference string                 `json:"backupOwnerReference,omitempty"`
	Target               string                 `json:"target,omitempty"`
	Method               string                 `json:"method,omitempty"`
	PluginConfiguration  *PGBackupPluginConfig  `json:"pluginConfiguration,omitempty"`
	Online               *bool                  `json:"online,omitempty"`
}

// PGBackupPluginConfig mirrors CloudNativePG's BackupPluginConfiguration.
type PGBackupPluginConfig struct {
	Name       string            `json:"name"`
	Parameters map[string]string `json:"parameters,omitempty"`
}

func (b *PGScheduledBackup) validate() error {
	s := b.Spec
	// CloudNativePG schedules have six fields: seconds first.
	if n := len(strings.Fields(s.Schedule)); n != 6 {
		return fmt.Errorf("schedule %q has %d fields, CloudNativePG wants 6 (seconds first)", s.Schedule, n)
	}
	if s.Cluster.Name == "" {
		return errors.New("spec.cluster.name is required")
	}
	if !slices.Contains([]string{"", "barmanObjectStore", "volumeSnapshot", "plugin"}, s.Method) {
		return fmt.Errorf("method %q", s.Method)
	}
	if s.Method == "plugin" && (s.PluginConfiguration == nil || s.PluginConfiguration.Name == "") {
		return errors.New("method plugin needs pluginConfiguration.name")
	}
	if !slices.Contains([]string{"", "none", "self", "cluster"}, s.BackupOwnerReference) {
		return fmt.Errorf("backupOwnerReference %q", s.BackupOwnerReference)
	}
	return nil
}

// PGBackup is postgresql.cnpg.io/v1 Backup: one backup, taken once. No manifest here creates
// one; it is transcribed so that the checks can see one added.
type PGBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PGBackupSpec `json:"spec"`
}

// PGBackupSpec mirrors CloudNativePG's BackupSpec.
type PGBackupSpec struct {
	Cluster             PGLocalObjectReference `json:"cluster"`
	Target              string                 `json:"target,omitempty"`
	Method              string                 `json:"method,omitempty"`
	PluginConfiguration *PGBackupPluginConfig  `json:"pluginConfiguration,omitempty"`
	Online              *bool                  `json:"online,omitempty"`
}

func (b *PGBackup) validate() error {
	if b.Spec.Cluster.Name == "" {
		return errors.New("spec.cluster.name is required")
	}
	if !slices.Contains([]string{"", "barmanObjectStore", "volumeSnapshot", "plugin"}, b.Spec.Method) {
		return fmt.Errorf("method %q", b.Spec.Method)
	}
	return nil
}

// --- snapshot.storage.k8s.io/v1 -----------------------------------------------------------

// VolumeSnapshot is snapshot.storage.k8s.io/v1 VolumeSnapshot (the CSI external-snapshotter's
// API). No manifest here creates one; it is transcribed so that the checks can see one added.
type VolumeSnapshot struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              VolumeSnapshotSpec `json:"spec"`
}

// VolumeSnapshotSpec mirrors the external-snapshotter's VolumeSnapshotSpec.
type VolumeSnapshotSpec struct {
	Source                  VolumeSnapshotSource `json:"source"`
	VolumeSnapshotClassName *string              `json:"volumeSnapshotClassName,omitempty"`
}

// VolumeSnapshotSource mirrors the external-snapshotter's VolumeSnapshotSource: exactly one of
// a claim to snapshot or an existing snapshot content.
type VolumeSnapshotSource struct {
	PersistentVolumeClaimName *string `json:"persistentVolumeClaimName,omitempty"`
	VolumeSnapshotContentName *string `json:"volumeSnapshotContentName,omitempty"`
}

func (v *VolumeSnapshot) validate() error {
	if (v.Spec.Source.PersistentVolumeClaimName == nil) == (v.Spec.Source.VolumeSnapshotContentName == nil) {
		return errors.New("spec.source: exactly one of persistentVolumeClaimName and volumeSnapshotContentName")
	}
	return nil
}

// --- barmancloud.cnpg.io/v1 ----------------------------------------------------------------

// BarmanObjectStore is the Barman Cloud plugin's ObjectStore.
type BarmanObjectStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              BarmanObjectStoreSpec `json:"spec"`
}

// BarmanObjectStoreSpec mirrors the plugin's ObjectStoreSpec.
type BarmanObjectStoreSpec struct {
	Configuration                BarmanConfiguration         `json:"configuration"`
	RetentionPolicy              string                      `json:"retentionPolicy,omitempty"`
	InstanceSidecarConfiguration *BarmanSidecarConfiguration `json:"instanceSidecarConfiguration,omitempty"`
}

// BarmanSidecarConfiguration mirrors the plugin's InstanceSidecarConfiguration.
type BarmanSidecarConfiguration struct {
	Env                            []corev1.EnvVar             `json:"env,omitempty"`
	RetentionPolicyIntervalSeconds int                         `json:"retentionPolicyIntervalSeconds,omitempty"`
	Resources                      corev1.ResourceRequirements `json:"resources,omitempty"`
}

// BarmanConfiguration mirrors barman-cloud's BarmanObjectStoreConfiguration (S3 credentials
// only: the regions run on S3).
type BarmanConfiguration struct {
	S3Credentials   *BarmanS3Credentials `json:"s3Credentials,omitempty"`
	EndpointURL     string               `json:"endpointURL,omitempty"`
	DestinationPath string               `json:"destinationPath"`
	ServerName      string               `json:"serverName,omitempty"`
	Wal             *BarmanWalConfig     `json:"wal,omitempty"`
	Data            *BarmanDataConfig    `json:"data,omitempty"`
	Tags            map[string]string    `json:"tags,omitempty"`
	HistoryTags     map[string]string    `json:"historyTags,omitempty"`
}

// BarmanS3Credentials mirrors barman-cloud's S3Credentials (role-based form only: no key
// material is ever referenced from these manifests).
type BarmanS3Credentials struct {
	InheritFromIAMRole bool `json:"inheritFromIAMRole,omitempty"`
}

// BarmanWalConfig mirrors barman-cloud's WalBackupConfiguration.
type BarmanWalConfig struct {
	Compression                  string   `json:"compression,omitempty"`
	Encryption                   string   `json:"encryption,omitempty"`
	MaxParallel                  int      `json:"maxParallel,omitempty"`
	ArchiveAdditionalCommandArgs []string `json:"archiveAdditionalCommandArgs,omitempty"`
	RestoreAdditionalCommandArgs []string `json:"restoreAdditionalCommandArgs,omitempty"`
}

// BarmanDataConfig mirrors barman-cloud's DataBackupConfiguration.
type BarmanDataConfig struct {
	Compression                  string   `json:"compression,omitempty"`
	Encryption                   string   `json:"encryption,omitempty"`
	Jobs                         *int32   `json:"jobs,omitempty"`
	ImmediateCheckpoint          bool     `json:"immediateCheckpoint,omitempty"`
	AdditionalCommandArgs        []string `json:"additionalCommandArgs,omitempty"`
	RestoreAdditionalCommandArgs []string `json:"restoreAdditionalCommandArgs,omitempty"`
}

var (
	retentionRE        = regexp.MustCompile(`^[1-9][0-9]*[dwm]$`)
	barmanCompressions = []string{"", "bzip2", "gzip", "lz4", "snappy", "xz", "zstd"}
	barmanEncryptions  = []string{"", "AES256", "aws:kms"}
)

func (o *BarmanObjectStore) validate() error {
	c := o.Spec.Configuration
	var errs []error
	if c.DestinationPath == "" {
		errs = append(errs, errors.New("configuration.destinationPath is required"))
	}
	if c.ServerName != "" {
		errs = append(errs, errors.New("configuration.serverName must be empty (use the plugin's serverName parameter)"))
	}
	if o.Spec.RetentionPolicy != "" && !retentionRE.MatchString(o.Spec.RetentionPolicy) {
		errs = append(errs, fmt.Errorf("retentionPolicy %q", o.Spec.RetentionPolicy))
	}
	if w := c.Wal; w != nil {
		if !slices.Contains(barmanCompressions, w.Compression) || !slices.Contains(barmanEncryptions, w.Encryption) {
			errs = append(errs, fmt.Errorf("wal compression %q / encryption %q", w.Compression, w.Encryption))
		}
	}
	if d := c.Data; d != nil {
		if !slices.Contains(barmanCompressions, d.Compression) || !slices.Contains(barmanEncryptions, d.Encryption) {
			errs = append(errs, fmt.Errorf("data compression %q / encryption %q", d.Compression, d.Encryption))
		}
	}
	return errors.Join(errs...)
}
