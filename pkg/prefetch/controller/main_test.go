package controller_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/clock"
	"github.com/ringcache/ringcache/pkg/prefetch"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
	"github.com/ringcache/ringcache/pkg/prefetch/controller"
)

// The tests run against a real kube-apiserver and etcd (envtest, from
// KUBEBUILDER_ASSETS: eval "$(scripts/kube-deps.sh)"), with the CRD
// installed from the chart's YAML.
var (
	testEnv *envtest.Environment
	restCfg *rest.Config
	envErr  error
	scheme  = runtime.NewScheme()
	binDir  string
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") != "" {
		testEnv = &envtest.Environment{
			CRDDirectoryPaths:     []string{"../../../charts/ringcache/crds"},
			ErrorIfCRDPathMissing: true,
		}
		restCfg, envErr = testEnv.Start()
	}
	dir, err := os.MkdirTemp("", "ringcache-controller-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-o", dir, "../../../cmd/cachenode")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cachenode:", err)
		os.Exit(1)
	}
	code := m.Run()
	if testEnv != nil && envErr == nil {
		testEnv.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// needAPI skips (or, with RINGCACHE_REQUIRE_REAL=1, fails) without a
// kube-apiserver, and returns a client and a fresh namespace.
func needAPI(t *testing.T) (client.Client, string) {
	t.Helper()
	if testEnv == nil {
		realtest.Missing(t, "KUBEBUILDER_ASSETS is not set: run eval \"$(scripts/kube-deps.sh)\"")
	}
	if envErr != nil {
		t.Fatalf("start kube-apiserver: %v", envErr)
	}
	c, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "warmup-test-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return c, ns.Name
}

// statusInterval is the controller's StatusInterval in the tests. With a
// fake clock, progress is written only when the test advances it.
const statusInterval = 200 * time.Millisecond

// startController runs a manager with the Warmup controller watching ns,
// on clk (a *clocktest.Fake, or clock.Real() for the real cluster test).
func startController(t *testing.T, ns string, w controller.Warmer, clk clock.Clock) *controller.Reconciler {
	t.Helper()
	skip := true
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Controller:             config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := controller.New(controller.Options{Warmer: w, Clock: clk, StatusInterval: statusInterval})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return r
}

// reconcileNow runs one reconcile of key to its end in the test's
// goroutine (besides the manager's). A run a reconcile starts is
// registered (r.Running) before the reconcile returns and stays so until
// it has called the warmer, so after reconcileNow, "no run started" is
// !r.Running(key) with no warmer call: checked at a known instant, not
// after a sleep.
func reconcileNow(t *testing.T, r *controller.Reconciler, key types.NamespacedName) {
	t.Helper()
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil && !apierrors.IsConflict(err) {
		t.Fatalf("reconcile %s: %v", key, err)
	}
}

// fakeWarmer records runs; while hold is open, runs wait for it (or for
// their cancellation).
type fakeWarmer struct {
	mu       sync.Mutex
	calls    []controller.Request
	reported int // runs that have reported their first progress
	canceled int
	hold     chan struct{}
}

func (f *fakeWarmer) Warm(ctx context.Context, req controller.Request, onProgress func(prefetch.Progress)) (*controller.Outcome, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	hold := f.hold
	f.mu.Unlock()
	p := prefetch.Progress{Files: 2, Blocks: 10, Bytes: 40 << 20, BlocksDone: 4, BytesDone: 16 << 20, ETA: -1}
	onProgress(p)
	f.mu.Lock()
	f.reported++
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-ctx.Done():
			f.mu.Lock()
			f.canceled++
			f.mu.Unlock()
			return &controller.Outcome{Result: prefetch.Result{Progress: p}}, ctx.Err()
		case <-hold:
		}
	}
	p.FilesDone, p.BlocksDone, p.BlocksFetched, p.BytesDone, p.ETA = 2, 10, 10, 40<<20, 0
	return &controller.Outcome{Result: prefetch.Result{Progress: p}}, nil
}

func (f *fakeWarmer) counts() (calls, canceled int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls), f.canceled
}

func (f *fakeWarmer) progressReported() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reported
}

// eventually polls cond until it holds or timeout passes. It polls the
// real kube-apiserver (and what the controller wrote there) with a real
// deadline; the sleep between polls is a poll interval, not a wait for
// something to happen. "Nothing happened" is never asserted with it.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v; last: %s", what, timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, c client.Client, key types.NamespacedName) *v1alpha1.Warmup {
	t.Helper()
	var w v1alpha1.Warmup
	if err := c.Get(context.Background(), key, &w); err != nil {
		t.Fatal(err)
	}
	return &w
}

// waitPhase waits until the Warmup is in phase and returns it.
func waitPhase(t *testing.T, c client.Client, key types.NamespacedName, phase v1alpha1.Phase, timeout time.Duration) *v1alpha1.Warmup {
	t.Helper()
	var w *v1alpha1.Warmup
	eventually(t, timeout, fmt.Sprintf("%s reaches %s", key, phase), func() (bool, string) {
		w = get(t, c, key)
		return w.Status.Phase == phase, fmt.Sprintf("%+v", w.Status)
	})
	return w
}

// poke makes the controller reconcile key now (after the test moved the
// fake clock): an annotation change.
func poke(t *testing.T, c client.Client, key types.NamespacedName) {
	t.Helper()
	w := get(t, c, key)
	patch := client.MergeFrom(w.DeepCopy())
	if w.Annotations == nil {
		w.Annotations = map[string]string{}
	}
	w.Annotations["test/poke"] = fmt.Sprint(time.Now().UnixNano())
	if err := c.Patch(context.Background(), w, patch); err != nil {
		t.Fatal(err)
	}
}

func condition(w *v1alpha1.Warmup, typ string) *metav1.Condition {
	for i := range w.Status.Conditions {
		if w.Status.Conditions[i].Type == typ {
			return &w.Status.Conditions[i]
		}
	}
	return nil
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func newWarmup(ns, name string, policy v1alpha1.WarmupPolicy) *v1alpha1.Warmup {
	return &v1alpha1.Warmup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.WarmupSpec{Volume: "models", Paths: []string{"/llama"}, Policy: policy},
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
