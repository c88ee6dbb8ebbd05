package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ringcache/ringcache/internal/cli"
	"github.com/ringcache/ringcache/pkg/csi"
)

const controllerHelp = `Usage: csi controller [flags]

Serves the CSI identity and controller services of csi.ringcache.io, for the
external-provisioner (run it with --extra-create-metadata). CreateVolume
turns StorageClass parameters (volume, pathPattern, allowedPrefix) and the
PVC into a model path inside a JuiceFS volume and checks that it exists;
DeleteVolume never deletes model data. PVC annotations are read from the
API server (in-cluster config, or --kubeconfig); without API access only
pathPatterns without ${pvc.annotations[...]} work. See docs/csi.md.

Flags:
`

func runController(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.NewFlagSet("controller", controllerHelp, stderr)
	var (
		endpoint, kubeconfig, driverName string
		timeout                          time.Duration
		lf                               logFlags
	)
	fs.StringVar(&endpoint, "endpoint", envOr("CSI_ENDPOINT", "unix:///csi/csi.sock"), "CSI endpoint (env CSI_ENDPOINT)")
	fs.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig for the API server (env KUBECONFIG; default: in-cluster config)")
	fs.StringVar(&driverName, "driver-name", csi.DriverName, "CSI driver name")
	fs.DurationVar(&timeout, "check-timeout", 30*time.Second, "bound on one metadata check or API read")
	lf.register(fs)
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	var pvcs csi.PVCReader
	cfg, err := kubeConfig(kubeconfig)
	switch {
	case err != nil && kubeconfig != "":
		return fmt.Errorf("kubeconfig: %w", err)
	case err != nil:
		log.Warn("no Kubernetes API access: pathPatterns with PVC annotations will be refused", "reason", err.Error())
	default:
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("kubernetes client: %w", err)
		}
		pvcs = csi.KubePVCReader{Client: cs}
	}
	ctrl, err := csi.NewController(csi.ControllerOptions{
		DriverName: driverName, Version: version(), PVCs: pvcs, CheckTimeout: timeout,
		Logger: log.With("service", "controller"),
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	l, err := csi.Listen(endpoint)
	if err != nil {
		return err
	}
	log.Info("controller serving", "endpoint", endpoint, "kubernetes", pvcs != nil)
	s := csi.NewServer(log)
	ctrl.Register(s)
	return csi.Serve(ctx, s, l)
}

func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		return clientcmd.BuildConfigFromFlags("", path)
	}
	return rest.InClusterConfig()
}
