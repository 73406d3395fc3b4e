package k8s

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// knownKinds maps apiVersion/kind to a constructor of the type a rendered object is strictly
// decoded into: the upstream Go types for built-in kinds, and the transcriptions in crds_test.go
// for custom resources (cert-manager, CloudNativePG, the Barman Cloud plugin, CSI snapshots). A
// kind missing here fails the rendering, so a new kind cannot slip in unchecked. Backup and
// VolumeSnapshot are used by no manifest: they are known so that vaultBackupProblems judges one
// that is added, instead of a rendering failure someone "fixes" by registering the kind.
func knownKinds() map[string]func() any {
	return map[string]func() any{
		"v1/Namespace":                              func() any { return &corev1.Namespace{} },
		"v1/ServiceAccount":                         func() any { return &corev1.ServiceAccount{} },
		"v1/Service":                                func() any { return &corev1.Service{} },
		"v1/ConfigMap":                              func() any { return &corev1.ConfigMap{} },
		"v1/Secret":                                 func() any { return &corev1.Secret{} },
		"apps/v1/Deployment":                        func() any { return &appsv1.Deployment{} },
		"apps/v1/StatefulSet":                       func() any { return &appsv1.StatefulSet{} },
		"batch/v1/Job":                              func() any { return &batchv1.Job{} },
		"batch/v1/CronJob":                          func() any { return &batchv1.CronJob{} },
		"policy/v1/PodDisruptionBudget":             func() any { return &policyv1.PodDisruptionBudget{} },
		"autoscaling/v2/HorizontalPodAutoscaler":    func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
		"networking.k8s.io/v1/NetworkPolicy":        func() any { return &networkingv1.NetworkPolicy{} },
		"storage.k8s.io/v1/StorageClass":            func() any { return &storagev1.StorageClass{} },
		"cert-manager.io/v1/Certificate":            func() any { return &Certificate{} },
		"cert-manager.io/v1/ClusterIssuer":          func() any { return &Issuer{} },
		"cert-manager.io/v1/Issuer":                 func() any { return &Issuer{} },
		"postgresql.cnpg.io/v1/Cluster":             func() any { return &PGCluster{} },
		"postgresql.cnpg.io/v1/Database":            func() any { return &PGDatabase{} },
		"postgresql.cnpg.io/v1/ScheduledBackup":     func() any { return &PGScheduledBackup{} },
		"postgresql.cnpg.io/v1/Backup":              func() any { return &PGBackup{} },
		"snapshot.storage.k8s.io/v1/VolumeSnapshot": func() any { return &VolumeSnapshot{} },
		"barmancloud.cnpg.io/v1/ObjectStore":        func() any { return &BarmanObjectStore{} },
	}
}
