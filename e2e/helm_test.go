package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/internal/realtest"
	"github.com/ringcache/ringcache/pkg/ring"
)

// The Helm chart (charts/ringcache), checked the way it is used:
//   - helm lint, with default values and with every optional object on;
//   - helm template output validated offline and strictly (unknown fields
//     and wrong types fail) against Kubernetes v1.37.2's API schemas;
//   - helm install --wait into a real API server (kube-apiserver, etcd,
//     controller-manager, scheduler built from Go modules) whose nodes and
//     pods are faked by kwok: DaemonSets and Deployments become ready, the
//     Warmup CRD is established, the documented examples apply, only the
//     cache-node DaemonSet mounts the gossip key, an upgrade keeps the
//     cluster token and the gossip key;
//   - each ServiceAccount can do what its component needs and no more
//     (kubectl auth can-i, impersonating it).
// The tools come from scripts/kube-deps.sh: eval "$(scripts/kube-deps.sh)".

const (
	chartDir       = "../charts/ringcache"
	chartAllValues = "../charts/ringcache/ci/all-values.yaml"
	warmupCRDFile  = "../charts/ringcache/crds/ringcache.io_warmups.yaml"
	examplesDir    = "../docs/examples"
	kubeVersion    = "1.37.2"
)

// kubeTools are the binaries scripts/kube-deps.sh builds.
type kubeTools struct {
	helm, kubeconform, schemas, kwokctl, kwok, apiserver, controllerManager, scheduler, etcd, kubectl string
}

func findKubeTools(t *testing.T) kubeTools {
	t.Helper()
	var missing []string
	get := func(env string) string {
		v := os.Getenv(env)
		if v == "" {
			missing = append(missing, env)
			return ""
		}
		if _, err := os.Stat(v); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", env, err))
		}
		return v
	}
	k := kubeTools{
		helm: get("RINGCACHE_HELM"), kubeconform: get("RINGCACHE_KUBECONFORM"), schemas: get("RINGCACHE_K8S_SCHEMAS"),
		kwokctl: get("RINGCACHE_KWOKCTL"), kwok: get("RINGCACHE_KWOK"),
		apiserver: get("RINGCACHE_KUBE_APISERVER"), controllerManager: get("RINGCACHE_KUBE_CONTROLLER_MANAGER"),
		scheduler: get("RINGCACHE_KUBE_SCHEDULER"), etcd: get("RINGCACHE_ETCD"), kubectl: get("RINGCACHE_KUBECTL"),
	}
	if len(missing) > 0 {
		realtest.Missing(t, "Kubernetes tools missing: %s; run eval \"$(scripts/kube-deps.sh)\"", strings.Join(missing, ", "))
	}
	return k
}

// run runs a command and returns its stdout; it fails the test with both
// outputs on error.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out
}

func tryRun(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v\nstdout:\n%s\nstderr:\n%s", err, tail(stdout.String(), 4000), tail(stderr.String(), 4000))
	}
	return stdout.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// requireCRD fails the test when the chart's Warmup CRD file is missing:
// every check of the CRD below must run, none may pass by skipping.
func requireCRD(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(warmupCRDFile); err != nil {
		t.Fatalf("the chart's Warmup CRD %s is missing: %v", warmupCRDFile, err)
	}
}

func TestHelmChart(t *testing.T) {
	k := findKubeTools(t)
	requireCRD(t)

	t.Run("lint", func(t *testing.T) {
		run(t, nil, k.helm, "lint", "--strict", chartDir)
		run(t, nil, k.helm, "lint", "--strict", chartDir, "-f", chartAllValues)
	})

	t.Run("template", func(t *testing.T) {
		dir := t.TempDir()
		for _, c := range []struct {
			name string
			args []string
		}{
			{"default", nil},
			{"all", []string{"-f", chartAllValues, "--set", "csiController.extraSecretNamespaces={ml}"}},
		} {
			args := append([]string{"template", "ringcache", chartDir, "--namespace", "ringcache", "--include-crds",
				"--kube-version", kubeVersion}, c.args...)
			out := run(t, nil, k.helm, args...)
			file := filepath.Join(dir, c.name+".yaml")
			if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			// ServiceMonitor has no schema here (a Prometheus Operator CRD):
			// it is skipped by kind and checked below. Every other kind,
			// the Warmup CRD object included, must have a schema: a missing
			// one is an error, not a skip.
			summary := run(t, nil, k.kubeconform, "-strict", "-schema-location", k.schemas,
				"-kubernetes-version", kubeVersion, "-summary", "-skip", "ServiceMonitor", file)
			t.Logf("%s values: %s", c.name, strings.TrimSpace(summary))
			for _, kind := range []string{"DaemonSet", "Deployment", "CSIDriver", "Service", "NetworkPolicy", "ClusterRole", "Role", "Secret"} {
				if !strings.Contains(out, "\nkind: "+kind+"\n") {
					t.Errorf("%s values: no %s rendered", c.name, kind)
				}
			}
			if !strings.Contains(out, "kind: CustomResourceDefinition") {
				t.Errorf("%s values: the Warmup CRD is not in the chart's output", c.name)
			}
			if c.name == "default" {
				for _, kind := range []string{"ServiceMonitor", "StorageClass"} {
					if strings.Contains(out, "\nkind: "+kind+"\n") {
						t.Errorf("default values render a %s; it must be opt-in", kind)
					}
				}
				continue
			}
			// The ServiceMonitor must scrape a port the cache nodes' Service has.
			if !strings.Contains(out, "\nkind: ServiceMonitor\n") || !strings.Contains(out, "- port: http-metrics") ||
				!strings.Contains(out, "- name: http-metrics") {
				t.Errorf("all values: no ServiceMonitor scraping the Service's http-metrics port")
			}
			if !strings.Contains(out, "\nkind: StorageClass\n") {
				t.Errorf("all values: no StorageClass")
			}
		}
		// values.schema.json refuses misspelt keys and wrong types in values.
		for _, set := range []string{"cacheNodes.capacity=1TiB", "cacheNode.gossipProfile=wan", "csiNode.registrar.image.tag=1"} {
			if _, err := tryRun(nil, k.helm, "template", "ringcache", chartDir, "--set", set); err == nil {
				t.Errorf("helm template accepted --set %s", set)
			}
		}
		// The CSI controller's Secret access cannot be widened to the
		// gossip key, the token, or the whole release namespace.
		for _, set := range []string{"csiController.provisionerSecretNames={ringcache-gossip-key}",
			"csiController.provisionerSecretNames={ringcache-token}", "storageClass.create=true,storageClass.secretName=ringcache-volumes",
			"csiController.extraSecretNamespaces={ringcache}"} {
			if _, err := tryRun(nil, k.helm, "template", "ringcache", chartDir, "--namespace", "ringcache", "--set", set); err == nil {
				t.Errorf("helm template accepted --set %s", set)
			}
		}
		// The checks bite: an unknown field and a wrong type fail.
		bad := filepath.Join(dir, "bad.yaml")
		good, _ := os.ReadFile(filepath.Join(dir, "default.yaml"))
		for _, mutation := range []string{
			strings.Replace(string(good), "hostNetwork: true", "hostNetwork: true\n      hostNetwerk: true", 1),
			strings.Replace(string(good), "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: \"thirty\"", 1),
		} {
			if mutation == string(good) {
				t.Fatal("mutation did not apply")
			}
			if err := os.WriteFile(bad, []byte(mutation), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := tryRun(nil, k.kubeconform, "-strict", "-schema-location", k.schemas, "-kubernetes-version", kubeVersion,
				"-summary", "-skip", "ServiceMonitor", bad); err == nil {
				t.Error("kubeconform accepted a manifest with an unknown field or a wrong type")
			}
		}
	})

	t.Run("kwok", func(t *testing.T) {
		c := startKwok(t, k)
		testInstall(t, k, c)
	})
}

// kwokCluster is a running kwok cluster.
type kwokCluster struct {
	name, kubeconfig string
}

func (c kwokCluster) kubectl(t *testing.T, k kubeTools, args ...string) string {
	t.Helper()
	return run(t, nil, k.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
}

func startKwok(t *testing.T, k kubeTools) kwokCluster {
	t.Helper()
	work := t.TempDir()
	var b [4]byte
	rand.Read(b[:])
	name := "rc-helm-" + hex.EncodeToString(b[:])
	cfg := filepath.Join(work, "kwokctl.yaml")
	// Every component on loopback only.
	if err := os.WriteFile(cfg, []byte("apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\noptions:\n  bindAddress: 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"KWOK_WORKDIR=" + work, "KWOK_KUBECTL_BINARY=" + k.kubectl}
	t.Cleanup(func() {
		if out, err := tryRun(env, k.kwokctl, "delete", "cluster", "--name", name); err != nil {
			t.Errorf("delete kwok cluster %s: %v\n%s", name, err, out)
		}
	})
	start := time.Now()
	run(t, env, k.kwokctl, "create", "cluster", "--name", name, "--runtime", "binary", "--config", cfg,
		"--kube-apiserver-binary", k.apiserver, "--etcd-binary", k.etcd,
		"--kube-controller-manager-binary", k.controllerManager, "--kube-scheduler-binary", k.scheduler,
		"--kwok-controller-binary", k.kwok, "--wait", "2m")
	c := kwokCluster{name: name, kubeconfig: filepath.Join(work, "clusters", name, "kubeconfig.yaml")}
	t.Logf("kwok cluster %s up in %s", name, time.Since(start).Round(time.Millisecond))
	if srv := c.kubectl(t, k, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"); !strings.Contains(srv, "127.0.0.1") {
		t.Errorf("API server is not on loopback: %s", srv)
	}

	// Two GPU nodes (labelled and tainted the way NVIDIA's GPU operator
	// does) and one CPU node for the controllers.
	var nodes strings.Builder
	for _, n := range []struct {
		name string
		gpu  bool
	}{{"gpu-0", true}, {"gpu-1", true}, {"cpu-0", false}} {
		fmt.Fprintf(&nodes, `---
apiVersion: v1
kind: Node
metadata:
  name: %[1]s
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: %[1]s
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
`, n.name)
		if n.gpu {
			nodes.WriteString(`    nvidia.com/gpu.present: "true"
spec:
  taints:
    - key: nvidia.com/gpu
      value: present
      effect: NoSchedule
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "8"}
  capacity: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "8"}
`)
		} else {
			nodes.WriteString(`status:
  allocatable: {cpu: "16", memory: 64Gi, pods: "110"}
  capacity: {cpu: "16", memory: 64Gi, pods: "110"}
`)
		}
	}
	file := filepath.Join(work, "nodes.yaml")
	if err := os.WriteFile(file, []byte(nodes.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c.kubectl(t, k, "apply", "-f", file)
	c.kubectl(t, k, "wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
	return c
}

func testInstall(t *testing.T, k kubeTools, c kwokCluster) {
	const ns, release = "ringcache", "ringcache"
	helm := func(args ...string) string {
		t.Helper()
		return run(t, nil, k.helm, append(args, "--kubeconfig", c.kubeconfig)...)
	}
	// Everything on except the ServiceMonitor (no Prometheus Operator CRDs
	// here); the chart's StorageClass gets its own name so that the
	// documented one applies next to it.
	valueArgs := []string{release, chartDir, "--namespace", ns,
		"-f", chartAllValues, "--set", "serviceMonitor.enabled=false", "--set", "storageClass.name=ringcache-models-chart"}
	start := time.Now()
	helm(append(append([]string{"install"}, valueArgs...), "--create-namespace", "--wait", "--timeout", "3m")...)
	t.Logf("helm install --wait: %s", time.Since(start).Round(time.Millisecond))

	t.Run("ready", func(t *testing.T) {
		for _, ds := range []string{"ringcache-cache-node", "ringcache-csi-node"} {
			var st struct {
				Status struct{ DesiredNumberScheduled, NumberReady int }
			}
			jsonOut(t, c.kubectl(t, k, "-n", ns, "get", "daemonset", ds, "-o", "json"), &st)
			if st.Status.DesiredNumberScheduled != 2 || st.Status.NumberReady != 2 {
				t.Errorf("DaemonSet %s: %d desired, %d ready; want 2 and 2 (one per GPU node)", ds, st.Status.DesiredNumberScheduled, st.Status.NumberReady)
			}
		}
		for _, d := range []string{"ringcache-csi-controller", "ringcache-prefetch-controller"} {
			var st struct {
				Status struct{ Replicas, ReadyReplicas int }
			}
			jsonOut(t, c.kubectl(t, k, "-n", ns, "get", "deployment", d, "-o", "json"), &st)
			if st.Status.ReadyReplicas != 2 {
				t.Errorf("Deployment %s: %d of %d ready; want 2", d, st.Status.ReadyReplicas, st.Status.Replicas)
			}
		}
		// Cache nodes only on GPU nodes.
		out := c.kubectl(t, k, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=cache-node", "-o", "jsonpath={.items[*].spec.nodeName}")
		if strings.Contains(out, "cpu-0") || len(strings.Fields(out)) != 2 {
			t.Errorf("cache node pods on %q; want gpu-0 and gpu-1", out)
		}
		// The headless Service lists not-ready cache nodes (gossip seeds).
		if got := c.kubectl(t, k, "-n", ns, "get", "service", "ringcache-cache", "-o", "jsonpath={.spec.clusterIP} {.spec.publishNotReadyAddresses}"); got != "None true" {
			t.Errorf("cache Service: clusterIP and publishNotReadyAddresses = %q; want \"None true\"", got)
		}
		if got := c.kubectl(t, k, "get", "csidriver", "csi.ringcache.io", "-o",
			"jsonpath={.spec.attachRequired} {.spec.podInfoOnMount} {.spec.fsGroupPolicy} {.spec.volumeLifecycleModes}"); got != `false true None ["Persistent","Ephemeral"]` {
			t.Errorf("CSIDriver spec: %s", got)
		}
	})

	// The chart's arguments are flags the binaries have (built by TestMain
	// from this tree), so the chart and the commands cannot drift apart.
	t.Run("flags", func(t *testing.T) {
		var workloads struct {
			Items []struct {
				Metadata struct{ Name string }
				Spec     struct {
					Template struct {
						Spec struct {
							Containers []struct {
								Name          string
								Command, Args []string
							}
						}
					}
				}
			}
		}
		jsonOut(t, c.kubectl(t, k, "-n", ns, "get", "daemonsets,deployments", "-o", "json"), &workloads)
		checked := 0
		for _, p := range workloads.Items {
			for _, ctr := range p.Spec.Template.Spec.Containers {
				if len(ctr.Command) != 1 || (ctr.Command[0] != "cachenode" && ctr.Command[0] != "csi") || len(ctr.Args) == 0 {
					continue
				}
				known := binaryFlags(t, ctr.Command[0], ctr.Args[0])
				for _, a := range ctr.Args[1:] {
					name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
					if !strings.HasPrefix(a, "-") || !known[name] {
						t.Errorf("%s/%s: %s %s has no flag %q", p.Metadata.Name, ctr.Name, ctr.Command[0], ctr.Args[0], a)
					}
					checked++
				}
			}
		}
		if checked == 0 {
			t.Fatal("no cachenode or csi container found")
		}
		t.Logf("%d arguments checked against the binaries' flags", checked)
	})

	t.Run("crd", func(t *testing.T) {
		c.kubectl(t, k, "wait", "--for=condition=Established", "crd/warmups.ringcache.io", "--timeout=60s")
	})

	t.Run("examples", func(t *testing.T) {
		c.kubectl(t, k, "create", "namespace", "inference")
		// Server-side validation (kubectl's default --validate=strict
		// makes the API server refuse unknown fields), then for real.
		files := []string{"storageclass.yaml", "pvc.yaml", "inference-deployment.yaml", "inference-ephemeral.yaml"}
		warmups, _ := filepath.Glob(filepath.Join(examplesDir, "warmup-*.yaml"))
		if len(warmups) == 0 {
			t.Errorf("no Warmup examples: %s/warmup-*.yaml matches nothing", examplesDir)
		}
		for _, w := range warmups {
			files = append(files, filepath.Base(w))
		}
		for _, f := range files {
			path := filepath.Join(examplesDir, f)
			c.kubectl(t, k, "apply", "--dry-run=server", "-f", path)
			t.Logf("applied %s: %s", f, strings.TrimSpace(c.kubectl(t, k, "apply", "-f", path)))
		}
		// The PVC asks the documented class and the provisioner of ringcache.
		if got := c.kubectl(t, k, "get", "storageclass", "ringcache-models", "-o", "jsonpath={.provisioner}"); got != "csi.ringcache.io" {
			t.Errorf("example StorageClass provisioner %q", got)
		}
	})

	t.Run("rbac", func(t *testing.T) { testRBAC(t, k, c, ns) })

	t.Run("gossip key only in cache nodes", func(t *testing.T) { testGossipKeySecret(t, k, c, ns) })

	t.Run("upgrade", func(t *testing.T) {
		token := func() string {
			return c.kubectl(t, k, "-n", ns, "get", "secret", "ringcache-token", "-o", "jsonpath={.data.token}")
		}
		gossipKey := func() string {
			return c.kubectl(t, k, "-n", ns, "get", "secret", "ringcache-gossip-key", "-o", "jsonpath={.data.gossip-key}")
		}
		before, beforeKey := token(), gossipKey()
		helm(append(append([]string{"upgrade"}, valueArgs...), "--set", "cacheNode.logLevel=debug", "--wait", "--timeout", "3m")...)
		if after := token(); after != before || after == "" {
			t.Errorf("helm upgrade changed the cluster token (a new one splits the ring)")
		}
		if after := gossipKey(); after != beforeKey || after == "" {
			t.Errorf("helm upgrade changed the gossip key (a new one splits the ring)")
		}
		if got := c.kubectl(t, k, "-n", ns, "get", "daemonset", "ringcache-cache-node", "-o", "jsonpath={.spec.template.spec.containers[0].args}"); !strings.Contains(got, "--log-level=debug") {
			t.Errorf("upgrade did not reach the cache node DaemonSet: %s", got)
		}
	})
}

func jsonOut(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", tail(s, 500), err)
	}
}

// canI is one row of a ServiceAccount's permission table.
type canI struct {
	verb, resource, sub, ns string // ns "*" means all namespaces
	want                    bool
}

func testRBAC(t *testing.T, k kubeTools, c kwokCluster, ns string) {
	// Denied to every component that needs no API access.
	none := []canI{
		{"get", "secrets", "", ns, false}, {"list", "secrets", "", ns, false}, {"get", "configmaps", "", ns, false},
		{"list", "pods", "", ns, false}, {"get", "nodes", "", "", false}, {"create", "events", "", ns, false},
		{"get", "leases.coordination.k8s.io", "", ns, false}, {"list", "warmups.ringcache.io", "", "*", false},
		{"get", "persistentvolumes", "", "", false}, {"list", "endpointslices.discovery.k8s.io", "", ns, false},
	}
	table := map[string][]canI{
		"ringcache-cache-node": none,
		"ringcache-csi-node":   none,
		"ringcache-csi-controller": {
			{"create", "persistentvolumes", "", "", true}, {"delete", "persistentvolumes", "", "", true},
			{"watch", "persistentvolumes", "", "", true},
			{"get", "persistentvolumeclaims", "", "*", true}, {"list", "persistentvolumeclaims", "", "*", true},
			{"watch", "persistentvolumeclaims", "", "*", true}, {"update", "persistentvolumeclaims", "", "inference", true},
			{"list", "storageclasses.storage.k8s.io", "", "", true}, {"watch", "csinodes.storage.k8s.io", "", "", true},
			{"create", "events", "", "inference", true}, {"patch", "events", "", "inference", true},
			{"get", "leases.coordination.k8s.io", "", ns, true}, {"update", "leases.coordination.k8s.io", "", ns, true},
			{"create", "leases.coordination.k8s.io", "", ns, true},
			{"get", "secrets/ringcache-meta-models", "", ns, true}, // the provisioner secret, by name
			// and no more: not any name (the Role lists resourceNames), so
			// not the gossip key, the token or the volumes Secret.
			{"get", "secrets", "", ns, false}, {"get", "secrets/ringcache-gossip-key", "", ns, false},
			{"get", "secrets/ringcache-token", "", ns, false}, {"get", "secrets/ringcache-volumes", "", ns, false},
			{"list", "secrets", "", ns, false}, {"get", "secrets", "", "inference", false}, {"get", "secrets", "", "kube-system", false},
			{"delete", "persistentvolumeclaims", "", "inference", false}, {"create", "persistentvolumeclaims", "", "inference", false},
			{"create", "storageclasses.storage.k8s.io", "", "", false}, {"update", "volumeattachments.storage.k8s.io", "", "", false},
			{"create", "pods", "", ns, false}, {"get", "nodes", "", "", false},
			{"create", "leases.coordination.k8s.io", "", "kube-system", false},
			{"list", "warmups.ringcache.io", "", "*", false},
			{"update", "persistentvolumeclaims", "status", "inference", false},
		},
		"ringcache-prefetch-controller": {
			{"get", "warmups.ringcache.io", "", "*", true}, {"list", "warmups.ringcache.io", "", "*", true},
			{"watch", "warmups.ringcache.io", "", "*", true}, {"update", "warmups.ringcache.io", "", "inference", true},
			{"patch", "warmups.ringcache.io", "", "inference", true},
			{"update", "warmups.ringcache.io", "status", "inference", true}, {"patch", "warmups.ringcache.io", "status", "inference", true},
			{"get", "secrets/ringcache-volumes", "", ns, true},                    // metadata URLs, by name
			{"create", "events", "", ns, true}, {"patch", "events", "", ns, true}, // leader election
			{"get", "leases.coordination.k8s.io", "", ns, true}, {"update", "leases.coordination.k8s.io", "", ns, true},
			{"create", "leases.coordination.k8s.io", "", ns, true},
			// and no more:
			{"create", "warmups.ringcache.io", "", "inference", false}, {"delete", "warmups.ringcache.io", "", "inference", false},
			{"update", "warmups.ringcache.io", "finalizers", "inference", false}, // it sets no finalizer
			{"get", "secrets", "", ns, false}, {"get", "secrets/ringcache-token", "", ns, false},
			{"get", "secrets/ringcache-meta-models", "", ns, false}, {"get", "secrets/ringcache-gossip-key", "", ns, false},
			{"list", "secrets", "", ns, false}, {"watch", "secrets", "", ns, false}, {"get", "secrets", "", "inference", false},
			{"create", "events", "", "inference", false},
			{"get", "secrets", "", "kube-system", false},
			{"create", "pods", "", ns, false}, {"get", "nodes", "", "", false}, {"list", "persistentvolumes", "", "", false},
			{"get", "persistentvolumeclaims", "", "inference", false},
			{"create", "leases.coordination.k8s.io", "", "kube-system", false},
			{"get", "configmaps", "", ns, false},
		},
	}
	for sa, rows := range table {
		t.Run(sa, func(t *testing.T) {
			as := "system:serviceaccount:" + ns + ":" + sa
			for _, r := range rows {
				args := []string{"auth", "can-i", r.verb, r.resource, "--as", as}
				if r.sub != "" {
					args = append(args, "--subresource", r.sub)
				}
				switch r.ns {
				case "":
				case "*":
					args = append(args, "--all-namespaces")
				default:
					args = append(args, "--namespace", r.ns)
				}
				// can-i exits 1 for "no": read the answer, not the status.
				out, _ := tryRun(nil, k.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
				got := strings.TrimSpace(out)
				if got != "yes" && got != "no" {
					t.Fatalf("kubectl %s: unexpected answer %q", strings.Join(args, " "), got)
				}
				if (got == "yes") != r.want {
					t.Errorf("%s: can-i %s %s%s in %q = %s, want %v", sa, r.verb, r.resource, subSuffix(r.sub), r.ns, got, r.want)
				}
			}
			t.Logf("%d permissions checked", len(rows))
		})
	}
	// Components without API access get no token either.
	for _, ds := range []string{"ringcache-cache-node", "ringcache-csi-node"} {
		if got := c.kubectl(t, k, "-n", ns, "get", "daemonset", ds, "-o", "jsonpath={.spec.template.spec.automountServiceAccountToken}"); got != "false" {
			t.Errorf("%s mounts a ServiceAccount token (automountServiceAccountToken=%q)", ds, got)
		}
	}
}

// testGossipKeySecret: the chart generated a valid gossip key file, and the
// cache-node DaemonSet is the only workload that mounts it (finding 10:
// pods holding only the cluster token must not be able to join the ring).
func testGossipKeySecret(t *testing.T, k kubeTools, c kwokCluster, ns string) {
	const secret = "ringcache-gossip-key"
	b64 := c.kubectl(t, k, "-n", ns, "get", "secret", secret, "-o", "jsonpath={.data.gossip-key}")
	file, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("gossip key Secret data: %v", err)
	}
	if keys, err := ring.ParseKeyFile(file); err != nil || len(keys) != 1 {
		t.Errorf("generated gossip key file: %d keys, %v; want one valid key", len(keys), err)
	}
	var workloads struct {
		Items []struct {
			Kind     string
			Metadata struct{ Name string }
			Spec     struct {
				Template struct {
					Spec struct {
						Volumes []struct {
							Name   string
							Secret *struct {
								SecretName string `json:"secretName"`
							}
							Projected *struct {
								Sources []struct {
									Secret *struct{ Name string }
								}
							}
						}
						Containers []struct {
							Name string
							Args []string
						}
					}
				}
			}
		}
	}
	jsonOut(t, c.kubectl(t, k, "-n", ns, "get", "daemonsets,deployments,statefulsets,jobs", "-o", "json"), &workloads)
	mountedBy := map[string]bool{}
	for _, w := range workloads.Items {
		for _, v := range w.Spec.Template.Spec.Volumes {
			refs := []string{}
			if v.Secret != nil {
				refs = append(refs, v.Secret.SecretName)
			}
			if v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if src.Secret != nil {
						refs = append(refs, src.Secret.Name)
					}
				}
			}
			if slices.Contains(refs, secret) {
				mountedBy[w.Metadata.Name] = true
			}
		}
	}
	if len(workloads.Items) < 4 {
		t.Fatalf("found %d workloads, want the 4 of the release", len(workloads.Items))
	}
	if !mountedBy["ringcache-cache-node"] || len(mountedBy) != 1 {
		t.Errorf("gossip key Secret mounted by %v; want ringcache-cache-node only", slices.Sorted(maps.Keys(mountedBy)))
	}
	for _, w := range workloads.Items {
		for _, ctr := range w.Spec.Template.Spec.Containers {
			has := slices.ContainsFunc(ctr.Args, func(a string) bool { return strings.HasPrefix(a, "--gossip-key-file=") })
			if want := w.Metadata.Name == "ringcache-cache-node" && ctr.Name == "cachenode"; has != want {
				t.Errorf("%s/%s: --gossip-key-file given %v, want %v", w.Metadata.Name, ctr.Name, has, want)
			}
		}
	}
}

func subSuffix(s string) string {
	if s == "" {
		return ""
	}
	return "/" + s
}

// binaryFlags returns the flags of "bin sub" (from its --help).
func binaryFlags(t *testing.T, bin, sub string) map[string]bool {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), sub, "--help")
	out, _ := cmd.CombinedOutput() // --help exits 0, but the flags are what matter
	flags := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(line, "  -") && strings.HasPrefix(f[0], "-") {
			flags[strings.TrimLeft(f[0], "-")] = true
		}
	}
	if len(flags) == 0 {
		t.Fatalf("%s %s --help lists no flags:\n%s", bin, sub, out)
	}
	return flags
}
