package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ringcache/ringcache/internal/cli"
	"github.com/ringcache/ringcache/pkg/peer"
	"github.com/ringcache/ringcache/pkg/prefetch"
	"github.com/ringcache/ringcache/pkg/prefetch/api/v1alpha1"
	"github.com/ringcache/ringcache/pkg/prefetch/controller"
)

const controllerHelp = `Usage: cachenode controller [flags]

Runs the Warmup controller: watches Warmup objects (ringcache.io/v1alpha1,
charts/ringcache/crds/ringcache.io_warmups.yaml) and runs their warm-ups
against the cache nodes, once or on their cron schedule a lead time ahead,
writing progress to each Warmup's status. "kubectl apply -f warmup.yaml"
starts one; "kubectl get warmups" shows phase and progress. See
docs/warmup.md.

Kubernetes access: --kubeconfig, else $KUBECONFIG, else the in-cluster
service account, else ~/.kube/config. RBAC: warmups and warmups/status
(get, list, watch, update), leases (leader election) and
get on the --volumes-secret Secret.

Volumes' metadata URLs hold passwords: they are never taken from argv and
never logged or written to a status. They come from (first match):
  --volumes-dir DIR        one file per volume, named after it (like
                           "cachenode serve --volumes-dir"; a mounted Secret)
  --volumes-secret [NS/]NAME  a Secret with one key per volume, read at
                           every run (namespace default: --namespace, else
                           $POD_NAMESPACE)
The cluster token comes from --token-file or RINGCACHE_TOKEN_FILE.

Run it with --leader-elect for more than one replica (HA): one leader runs
warm-ups; a new leader resumes runs whose status says Running.

Flags:
`

type controllerFlags struct {
	kubeconfig, namespace, seeds, tokenFile, volumesDir, volumesSecret string
	metricsAddr, healthAddr, leaderNS, leaderID, logLevel, logFormat   string
	leaderElect                                                        bool
	statusInterval, callTimeout                                        time.Duration
}

func (f *controllerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
	fs.StringVar(&f.namespace, "namespace", "", "watch Warmups in this namespace only (default: all namespaces)")
	fs.StringVar(&f.seeds, "seeds", "", "peer addresses (host:port) of cache nodes to learn the ring from, comma-separated, e.g. ringcache-cache:9700 (required)")
	fs.StringVar(&f.seeds, "addr", "", "alias of --seeds")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("RINGCACHE_TOKEN_FILE"), "file holding the cluster token (env RINGCACHE_TOKEN_FILE)")
	fs.StringVar(&f.volumesDir, "volumes-dir", "", "directory with one metadata-URL file per volume")
	fs.StringVar(&f.volumesSecret, "volumes-secret", "", "[NAMESPACE/]NAME of a Secret with one metadata-URL key per volume")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":9720", `address of the /metrics endpoint ("0": off)`)
	fs.StringVar(&f.healthAddr, "health-addr", ":9721", `address of /healthz and /readyz ("0": off)`)
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "elect a leader among replicas (a Lease); needed to run more than one")
	fs.StringVar(&f.leaderNS, "leader-election-namespace", "", "namespace of the leader Lease (default: the pod's namespace; required outside a cluster)")
	fs.StringVar(&f.leaderID, "leader-election-id", "ringcache-warmup-controller", "name of the leader Lease")
	fs.DurationVar(&f.statusInterval, "status-interval", controller.DefaultStatusInterval, "least time between progress writes to a Warmup's status")
	fs.DurationVar(&f.callTimeout, "call-timeout", prefetch.DefaultCallTimeout, "deadline of each call to a cache node")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
}

func (f *controllerFlags) validate() error {
	switch {
	case len(splitAddrs(f.seeds)) == 0:
		return usageErr("--seeds is required")
	case f.tokenFile == "":
		return usageErr("--token-file (or RINGCACHE_TOKEN_FILE) is required")
	case f.volumesDir == "" && f.volumesSecret == "":
		return usageErr("give --volumes-dir or --volumes-secret: where the volumes' metadata URLs are")
	case f.volumesDir != "" && f.volumesSecret != "":
		return usageErr("--volumes-dir and --volumes-secret exclude each other")
	case f.statusInterval <= 0:
		return usageErr("--status-interval must be positive")
	case f.callTimeout <= 0:
		return usageErr("--call-timeout must be positive")
	}
	if f.volumesDir != "" {
		if st, err := os.Stat(f.volumesDir); err != nil || !st.IsDir() {
			return usageErr("--volumes-dir %s is not a directory", f.volumesDir)
		}
	}
	return nil
}

// secretName parses --volumes-secret.
func (f *controllerFlags) secretName() (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(f.volumesSecret, "/")
	if !ok {
		ns, name = f.namespace, f.volumesSecret
		if ns == "" {
			ns = os.Getenv("POD_NAMESPACE")
		}
	}
	if ns == "" || name == "" {
		return types.NamespacedName{}, usageErr("--volumes-secret needs a namespace: NAMESPACE/NAME, --namespace or $POD_NAMESPACE")
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// restConfig finds the Kubernetes API: --kubeconfig, else controller-
// runtime's search ($KUBECONFIG, in-cluster, ~/.kube/config).
func (f *controllerFlags) restConfig() (*rest.Config, error) {
	if f.kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	}
	return ctrl.GetConfig()
}

// Scheme is the scheme of the controller's clients.
func controllerScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

func runController(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("controller", controllerHelp, stderr)
	var f controllerFlags
	f.register(fs)
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	logger, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ctrl.SetLogger(logr.FromSlogHandler(logger.Handler()))
	tok, err := peer.LoadToken(f.tokenFile)
	if err != nil {
		return err
	}
	cfg, err := f.restConfig()
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	scheme, err := controllerScheme()
	if err != nil {
		return err
	}
	mo := ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:  f.healthAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        f.leaderID,
		LeaderElectionNamespace: f.leaderNS,
		// Warmups only: Secrets are read uncached, one at a time.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	}
	if f.namespace != "" {
		mo.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{f.namespace: {}}}
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	var urls controller.MetaURLSource = controller.DirSource{Dir: f.volumesDir}
	if f.volumesSecret != "" {
		name, err := f.secretName()
		if err != nil {
			return err
		}
		urls = controller.SecretSource{Reader: mgr.GetAPIReader(), Secret: name}
	}
	r, err := controller.New(controller.Options{
		Warmer: &controller.ClusterWarmer{
			Seeds: splitAddrs(f.seeds), Token: tok, MetaURLs: urls, Logger: logger,
			Options: prefetch.Options{CallTimeout: f.callTimeout},
		},
		StatusInterval: f.statusInterval,
	})
	if err != nil {
		return err
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	if f.healthAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return err
		}
	}
	logger.Info("warmup controller starting", "seeds", splitAddrs(f.seeds), "namespace", f.namespace, "leader_elect", f.leaderElect)
	return mgr.Start(ctx)
}
