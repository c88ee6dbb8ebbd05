package csi

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PVCReader reads PersistentVolumeClaims from the API server. The
// controller needs only annotations; tests fake it.
type PVCReader interface {
	// PVCAnnotations returns the annotations of PVC namespace/name. A
	// missing PVC is an error for which apierrors.IsNotFound holds.
	PVCAnnotations(ctx context.Context, namespace, name string) (map[string]string, error)
}

// KubePVCReader is the PVCReader backed by client-go. It needs RBAC "get"
// on persistentvolumeclaims.
type KubePVCReader struct {
	Client kubernetes.Interface
}

// PVCAnnotations implements PVCReader.
func (k KubePVCReader) PVCAnnotations(ctx context.Context, namespace, name string) (map[string]string, error) {
	pvc, err := k.Client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return pvc.Annotations, nil
}
