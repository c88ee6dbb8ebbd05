package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ringcache/ringcache/internal/juicetest"
	"github.com/ringcache/ringcache/internal/realtest"
)

// kubeAssets finds etcd and kube-apiserver for envtest: KUBEBUILDER_ASSETS,
// else the directory scripts/kube-deps.sh builds.
func kubeAssets(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	matches, _ := filepath.Glob(filepath.Join(realtest.CacheDir(), "bin", "kubebuilder-assets-*"))
	for _, d := range matches {
		if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err == nil {
			return d
		}
	}
	realtest.Missing(t, "no kube-apiserver for envtest: set KUBEBUILDER_ASSETS (eval \"$(scripts/kube-deps.sh)\")")
	return ""
}

// TestCSIControllerWithAPIServer: the `csi controller` process reads PVC
// annotations from a real kube-apiserver (envtest) to make model paths
// from a StorageClass's pathPattern, confines them to allowedPrefix, and
// checks them in the real volume (Redis metadata): the path of an
// existing model is provisioned; a missing model, a missing annotation, a
// missing PVC, a traversal through an annotation, a path outside the
// prefix and a path through a symlink are refused, each with its code.
func TestCSIControllerWithAPIServer(t *testing.T) {
	assets := kubeAssets(t)
	e := newEnv(t, juicetest.FormatOptions{})
	e.write(t, map[string][]byte{
		"/models/team-a/llama-3-8b/v2/model.safetensors":   randomBytes(t, 1<<20),
		"/models/team-b/secret-model/v1/model.safetensors": randomBytes(t, 1<<10),
	})
	w, err := juicetest.OpenWriter(context.Background(), e.metaURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Symlink("../team-b/secret-model", "/models/team-a/alias"); err != nil {
		t.Fatal(err)
	}
	w.Close()

	testEnv := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := testEnv.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	t.Cleanup(func() { testEnv.Stop() })
	user, err := testEnv.AddUser(envtest.User{Name: "csi-provisioner", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc := func(name string, anns map[string]string) {
		t.Helper()
		_, err := cs.CoreV1().PersistentVolumeClaims("team-a").Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a", Annotations: anns},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	model := func(m, v string) map[string]string {
		return map[string]string{"ringcache.io/model": m, "ringcache.io/version": v}
	}
	pvc("llama", model("llama-3-8b", "v2"))
	pvc("missing-model", model("llama-3-8b", "v9"))
	pvc("no-version", map[string]string{"ringcache.io/model": "llama-3-8b"})
	pvc("traversal", model("../team-b/secret-model", "v1"))
	pvc("symlink", model("alias", "v1"))

	p := startCSIProc(t, "csi controller", filepath.Join(dir, "controller.sock"), "controller", "--kubeconfig", kubeconfig)
	const pattern = "/models/${pvc.namespace}/${pvc.annotations['ringcache.io/model']}/${pvc.annotations['ringcache.io/version']}"
	create := func(pvcName string, params map[string]string) (*csi.CreateVolumeResponse, error) {
		ps := map[string]string{
			"volume": e.format.Name, "pathPattern": pattern, "allowedPrefix": "/models/team-a",
			"csi.storage.k8s.io/pvc/name": pvcName, "csi.storage.k8s.io/pvc/namespace": "team-a",
			"csi.storage.k8s.io/pv/name": "pvc-" + pvcName,
		}
		for k, v := range params {
			ps[k] = v
		}
		return p.controller().CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name: "pvc-" + pvcName, Parameters: ps,
			VolumeCapabilities: []*csi.VolumeCapability{roCapability()},
			Secrets:            map[string]string{"metaurl": e.metaURL},
		})
	}
	r, err := create("llama", nil)
	if err != nil {
		t.Fatalf("CreateVolume from PVC annotations: %v", err)
	}
	if got := r.GetVolume().GetVolumeContext()["path"]; got != "/models/team-a/llama-3-8b/v2" {
		t.Errorf("model path %q from the PVC's annotations", got)
	}
	t.Logf("provisioned %s: %v", r.GetVolume().GetVolumeId(), r.GetVolume().GetVolumeContext())
	for _, tc := range []struct {
		pvc    string
		params map[string]string
		code   codes.Code
	}{
		{"missing-model", nil, codes.NotFound},
		{"no-version", nil, codes.InvalidArgument},
		{"no-such-pvc", nil, codes.NotFound},
		{"traversal", nil, codes.InvalidArgument},
		{"symlink", nil, codes.InvalidArgument},
		{"llama", map[string]string{"allowedPrefix": "/models/team-b"}, codes.PermissionDenied},
	} {
		_, err := create(tc.pvc, tc.params)
		if status.Code(err) != tc.code {
			t.Errorf("PVC %s %v: %v, want %v", tc.pvc, tc.params, err, tc.code)
		}
		if err != nil && strings.Contains(err.Error(), e.metaURL) {
			t.Errorf("an error holds the metadata URL: %v", err)
		}
		t.Logf("PVC %s: %v", tc.pvc, status.Convert(err).Message())
	}
	if _, err := p.controller().DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: r.GetVolume().GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	// DeleteVolume never deletes model data: the model is still there
	// to provision again.
	if _, err := create("llama", nil); err != nil {
		t.Errorf("the model is gone after DeleteVolume: %v", err)
	}
}
