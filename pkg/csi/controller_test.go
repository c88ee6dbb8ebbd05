package csi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ringcache/ringcache/pkg/redact"
)

// fakePVCs serves PVC annotations from a map keyed "namespace/name".
type fakePVCs struct {
	pvcs  map[string]map[string]string
	err   error
	calls int
}

func (f *fakePVCs) PVCAnnotations(_ context.Context, ns, name string) (map[string]string, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	a, ok := f.pvcs[ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "persistentvolumeclaims"}, name)
	}
	return a, nil
}

func newTestController(t *testing.T, fc *fakeChecker, pvcs PVCReader) (*Controller, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	o := ControllerOptions{Version: "test", Checker: fc, Logger: logs.logger()}
	if pvcs != nil {
		o.PVCs = pvcs
	}
	c, err := NewController(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

const modelPattern = "/models/${pvc.annotations['ringcache.io/model']}/${pvc.annotations['ringcache.io/version']}"

func createReq(params map[string]string) *csi.CreateVolumeRequest {
	p := map[string]string{
		KeyVolume: "models", KeyPathPattern: modelPattern, KeyAllowedPrefix: "/models/team-a",
		keyPVCNamespace: "team-a", keyPVCName: "llama", keyPVName: "pvc-123",
	}
	for k, v := range params {
		if v == "<delete>" {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	return &csi.CreateVolumeRequest{
		Name:               "pvc-123",
		VolumeCapabilities: []*csi.VolumeCapability{roCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)},
		Parameters:         p,
		Secrets:            map[string]string{KeyMetaURL: testSecretURL},
	}
}

// TestCreateVolumeValidation: the validation rules of CreateVolume, each
// with its code; invalid requests reach neither the API server nor the
// metadata engine.
func TestCreateVolumeValidation(t *testing.T) {
	annotations := func(model, version string) map[string]string {
		return map[string]string{"ringcache.io/model": model, "ringcache.io/version": version}
	}
	good := annotations("team-a/llama-3-8b", "v2")
	mode := func(m csi.VolumeCapability_AccessMode_Mode) func(*csi.CreateVolumeRequest) {
		return func(r *csi.CreateVolumeRequest) { r.VolumeCapabilities = []*csi.VolumeCapability{roCap(m)} }
	}
	for _, tc := range []struct {
		name   string
		params map[string]string
		mod    func(*csi.CreateVolumeRequest)
		anns   map[string]string // the PVC's annotations (nil: good)
		noKube bool
		check  error // the checker's answer
		code   codes.Code
		path   string // the model path on success
	}{
		{name: "ok", code: codes.OK, path: "/models/team-a/llama-3-8b/v2"},
		{name: "no name", mod: func(r *csi.CreateVolumeRequest) { r.Name = "" }, code: codes.InvalidArgument},
		{name: "no capabilities", mod: func(r *csi.CreateVolumeRequest) { r.VolumeCapabilities = nil }, code: codes.InvalidArgument},
		{name: "nil capability", mod: func(r *csi.CreateVolumeRequest) { r.VolumeCapabilities = []*csi.VolumeCapability{nil} }, code: codes.InvalidArgument},
		{name: "SINGLE_NODE_WRITER", mod: mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER), code: codes.InvalidArgument},
		{name: "SINGLE_NODE_SINGLE_WRITER", mod: mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER), code: codes.InvalidArgument},
		{name: "SINGLE_NODE_MULTI_WRITER", mod: mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER), code: codes.InvalidArgument},
		{name: "MULTI_NODE_SINGLE_WRITER", mod: mode(csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER), code: codes.InvalidArgument},
		{name: "MULTI_NODE_MULTI_WRITER", mod: mode(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), code: codes.InvalidArgument},
		{name: "UNKNOWN mode", mod: mode(csi.VolumeCapability_AccessMode_UNKNOWN), code: codes.InvalidArgument},
		{name: "SINGLE_NODE_READER_ONLY", mod: mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY), code: codes.OK, path: "/models/team-a/llama-3-8b/v2"},
		{name: "reader and writer", mod: func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = append(r.VolumeCapabilities, roCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER))
		}, code: codes.InvalidArgument},
		{name: "block", mod: func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities[0].AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
		}, code: codes.InvalidArgument},
		{name: "negative capacity", mod: func(r *csi.CreateVolumeRequest) { r.CapacityRange = &csi.CapacityRange{RequiredBytes: -1} }, code: codes.InvalidArgument},
		{name: "required over limit", mod: func(r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 10, LimitBytes: 5}
		}, code: codes.InvalidArgument},
		{name: "clone", mod: func(r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: "x"}}}
		}, code: codes.InvalidArgument},
		{name: "mutable parameters", mod: func(r *csi.CreateVolumeRequest) { r.MutableParameters = map[string]string{"a": "b"} }, code: codes.InvalidArgument},
		{name: "unknown parameter", params: map[string]string{"subdir": "/x"}, code: codes.InvalidArgument},
		{name: "no volume", params: map[string]string{KeyVolume: "<delete>"}, code: codes.InvalidArgument},
		{name: "bad volume name", params: map[string]string{KeyVolume: "Models/../x"}, code: codes.InvalidArgument},
		{name: "no pattern", params: map[string]string{KeyPathPattern: "<delete>"}, code: codes.InvalidArgument},
		{name: "relative pattern", params: map[string]string{KeyPathPattern: "models/x"}, code: codes.InvalidArgument},
		{name: "unknown reference", params: map[string]string{KeyPathPattern: "/models/${pvc.uid}"}, code: codes.InvalidArgument},
		{name: "unterminated reference", params: map[string]string{KeyPathPattern: "/models/${pvc.name"}, code: codes.InvalidArgument},
		{name: "unquoted annotation", params: map[string]string{KeyPathPattern: "/models/${pvc.annotations[model]}"}, code: codes.InvalidArgument},
		{name: "dotdot in pattern", params: map[string]string{KeyPathPattern: "/models/team-a/../team-b/x", KeyAllowedPrefix: "<delete>"}, code: codes.InvalidArgument},
		{name: "dotdot escape in pattern", params: map[string]string{KeyPathPattern: "/../../etc", KeyAllowedPrefix: "<delete>"}, code: codes.InvalidArgument},
		{name: "root pattern", params: map[string]string{KeyPathPattern: "/", KeyAllowedPrefix: "<delete>"}, code: codes.InvalidArgument},
		{name: "trash pattern", params: map[string]string{KeyPathPattern: "/.trash/x", KeyAllowedPrefix: "<delete>"}, code: codes.InvalidArgument},
		{name: "traversal through annotation", anns: annotations("../team-b/secret-model", "v1"), code: codes.InvalidArgument},
		{name: "traversal to root through annotation", anns: annotations("../../..", ".."), code: codes.InvalidArgument},
		{name: "outside prefix", anns: annotations("../team-b", "x"), params: map[string]string{KeyPathPattern: "/models/team-a/${pvc.annotations['ringcache.io/model']}"}, code: codes.InvalidArgument},
		{name: "other team", params: map[string]string{KeyPathPattern: "/models/team-b/llama"}, code: codes.PermissionDenied},
		{name: "prefix sibling", params: map[string]string{KeyPathPattern: "/models/team-a-evil/llama"}, code: codes.PermissionDenied},
		{name: "prefix itself", params: map[string]string{KeyPathPattern: "/models/team-a"}, code: codes.OK, path: "/models/team-a"},
		{name: "bad prefix", params: map[string]string{KeyAllowedPrefix: "models"}, code: codes.InvalidArgument},
		{name: "dotdot prefix", params: map[string]string{KeyAllowedPrefix: "/models/../"}, code: codes.InvalidArgument},
		{name: "secret prefix", mod: func(r *csi.CreateVolumeRequest) { r.Secrets[KeyAllowedPrefix] = "/models/team-b" }, code: codes.PermissionDenied},
		{name: "no secret", mod: func(r *csi.CreateVolumeRequest) { r.Secrets = nil }, code: codes.InvalidArgument},
		{name: "empty secret", mod: func(r *csi.CreateVolumeRequest) { r.Secrets = map[string]string{KeyMetaURL: " "} }, code: codes.InvalidArgument},
		{name: "secret not a url", mod: func(r *csi.CreateVolumeRequest) { r.Secrets = map[string]string{KeyMetaURL: "Sup3rS3cretPassw0rd"} }, code: codes.InvalidArgument},
		{name: "pvc name without metadata", params: map[string]string{KeyPathPattern: "/models/team-a/${pvc.name}", keyPVCName: "<delete>"}, code: codes.InvalidArgument},
		{name: "pvc namespace", params: map[string]string{KeyPathPattern: "/models/${pvc.namespace}/${pvc.name}"}, code: codes.OK, path: "/models/team-a/llama"},
		{name: "pv name", params: map[string]string{KeyPathPattern: "/models/team-a/${pv.name}"}, code: codes.OK, path: "/models/team-a/pvc-123"},
		{name: "annotations without metadata", params: map[string]string{keyPVCNamespace: "<delete>"}, code: codes.InvalidArgument},
		{name: "annotations without kube", noKube: true, code: codes.FailedPrecondition},
		{name: "fixed path without kube", noKube: true, params: map[string]string{KeyPathPattern: "/models/team-a/fixed", keyPVCName: "<delete>", keyPVCNamespace: "<delete>"}, code: codes.OK, path: "/models/team-a/fixed"},
		{name: "missing annotation", anns: map[string]string{"ringcache.io/model": "llama"}, code: codes.InvalidArgument},
		{name: "pvc not found", params: map[string]string{keyPVCName: "nope"}, code: codes.NotFound},
		{name: "model missing", check: status.Error(codes.NotFound, "model path does not exist"), code: codes.NotFound},
		{name: "symlink", check: status.Error(codes.InvalidArgument, "goes through a symlink"), code: codes.InvalidArgument},
		{name: "metadata down", check: status.Error(codes.Unavailable, "connection refused"), code: codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			anns := tc.anns
			if anns == nil {
				anns = good
			}
			pvcs := &fakePVCs{pvcs: map[string]map[string]string{"team-a/llama": anns}}
			fc := &fakeChecker{}
			if tc.check != nil {
				fc.errs = map[Model]error{}
			}
			var reader PVCReader = pvcs
			if tc.noKube {
				reader = nil
			}
			c, logs := newTestController(t, fc, reader)
			if tc.check != nil {
				c.checker = checkerFunc(func(context.Context, string, Model) (ModelInfo, error) { return ModelInfo{}, tc.check })
			}
			req := createReq(tc.params)
			if tc.mod != nil {
				tc.mod(req)
			}
			resp, err := c.CreateVolume(context.Background(), req)
			wantCode(t, err, tc.code)
			if err != nil && strings.Contains(err.Error(), "Sup3rS3cret") {
				t.Error("the error holds the secret")
			}
			if strings.Contains(logs.String(), "Sup3rS3cret") {
				t.Error("the logs hold the secret")
			}
			if tc.code == codes.InvalidArgument && fc.callCount() > 0 {
				t.Error("the metadata engine was asked about an invalid request")
			}
			if tc.code != codes.OK {
				return
			}
			v := resp.GetVolume()
			if v.GetVolumeContext()[KeyPath] != tc.path || v.GetVolumeContext()[KeyVolume] != "models" || len(v.GetVolumeContext()) != 2 {
				t.Errorf("volume context %v, want path %s", v.GetVolumeContext(), tc.path)
			}
			pid, ok := parseVolumeID(v.GetVolumeId())
			if !ok || pid.Volume != "models" || pid.Path != tc.path {
				t.Errorf("volume ID %q parses as %+v %v", v.GetVolumeId(), pid, ok)
			}
		})
	}
}

type checkerFunc func(context.Context, string, Model) (ModelInfo, error)

func (f checkerFunc) Check(ctx context.Context, u string, m Model) (ModelInfo, error) {
	return f(ctx, u, m)
}

// TestCreateVolumeIdempotentAndUniquePerName: the same request gives the
// same ID; another PV name for the same model gives another ID.
func TestCreateVolumeIdempotentAndUniquePerName(t *testing.T) {
	c, _ := newTestController(t, &fakeChecker{}, &fakePVCs{pvcs: map[string]map[string]string{
		"team-a/llama": {"ringcache.io/model": "team-a/llama", "ringcache.io/version": "v1"},
	}})
	ctx := context.Background()
	r1, err := c.CreateVolume(ctx, createReq(nil))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.CreateVolume(ctx, createReq(nil))
	if err != nil {
		t.Fatal(err)
	}
	other := createReq(nil)
	other.Name = "pvc-456"
	r3, err := c.CreateVolume(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Volume.VolumeId != r2.Volume.VolumeId {
		t.Errorf("repeated CreateVolume gave %q and %q", r1.Volume.VolumeId, r2.Volume.VolumeId)
	}
	if r1.Volume.VolumeId == r3.Volume.VolumeId {
		t.Errorf("two PVs of one model share the volume ID %q", r1.Volume.VolumeId)
	}
	if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: r1.Volume.VolumeId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{})
	wantCode(t, err, codes.InvalidArgument)
}

// TestControllerAborts: CreateVolume for a name in flight is Aborted.
func TestControllerAborts(t *testing.T) {
	fc := &fakeChecker{gate: make(chan struct{}), entered: make(chan struct{}, 2)}
	c, _ := newTestController(t, fc, &fakePVCs{pvcs: map[string]map[string]string{
		"team-a/llama": {"ringcache.io/model": "team-a/llama", "ringcache.io/version": "v1"},
	}})
	done := make(chan error, 1)
	go func() {
		_, err := c.CreateVolume(context.Background(), createReq(nil))
		done <- err
	}()
	<-fc.entered
	short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.CreateVolume(short, createReq(nil))
	wantCode(t, err, codes.Aborted)
	close(fc.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestValidateVolumeCapabilities.
func TestValidateVolumeCapabilities(t *testing.T) {
	fc := &fakeChecker{errs: map[Model]error{{Volume: "models", Path: "/models/gone"}: status.Error(codes.NotFound, "gone")}}
	c, _ := newTestController(t, fc, nil)
	ctx := context.Background()
	id := makeVolumeID("pv", Model{Volume: "models", Path: "/models/llama"})
	secrets := map[string]string{KeyMetaURL: testSecretURL}
	ro := []*csi.VolumeCapability{roCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)}
	rw := []*csi.VolumeCapability{roCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)}

	r, err := c.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: ro, Secrets: secrets})
	if err != nil || r.GetConfirmed() == nil || len(r.GetConfirmed().GetVolumeCapabilities()) != 1 {
		t.Fatalf("read-only: %v %v", r, err)
	}
	r, err = c.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: rw, Secrets: secrets})
	if err != nil || r.GetConfirmed() != nil || !strings.Contains(r.GetMessage(), "read-only") {
		t.Fatalf("writer: %v %v", r, err)
	}
	for _, tc := range []struct {
		name string
		req  *csi.ValidateVolumeCapabilitiesRequest
		code codes.Code
	}{
		{"no id", &csi.ValidateVolumeCapabilitiesRequest{VolumeCapabilities: ro, Secrets: secrets}, codes.InvalidArgument},
		{"no caps", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, Secrets: secrets}, codes.InvalidArgument},
		{"not our id", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "fake-vol-id-1234", VolumeCapabilities: ro, Secrets: secrets}, codes.NotFound},
		{"model gone", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: makeVolumeID("pv", Model{Volume: "models", Path: "/models/gone"}), VolumeCapabilities: ro, Secrets: secrets}, codes.NotFound},
		{"no secret", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: ro}, codes.InvalidArgument},
		{"context mismatch", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: ro, Secrets: secrets,
			VolumeContext: map[string]string{KeyVolume: "models", KeyPath: "/models/other"}}, codes.InvalidArgument},
		{"context match", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: ro, Secrets: secrets,
			VolumeContext: map[string]string{KeyVolume: "models", KeyPath: "/models/llama"}}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ValidateVolumeCapabilities(ctx, tc.req)
			wantCode(t, err, tc.code)
		})
	}
}

// TestVolumeIDs: IDs round-trip, long paths become digests, junk is not
// an ID.
func TestVolumeIDs(t *testing.T) {
	m := Model{Volume: "models", Path: "/models/llama-3/v2#weird:name"}
	id := makeVolumeID("pvc-1", m)
	pid, ok := parseVolumeID(id)
	if !ok || !pid.matches(m) || pid.Path != m.Path {
		t.Fatalf("%q parsed as %+v %v", id, pid, ok)
	}
	long := Model{Volume: "models", Path: "/models/" + strings.Repeat("x", 200)}
	lid := makeVolumeID("pvc-1", long)
	if len(lid) > 128 {
		t.Fatalf("ID of %d bytes", len(lid))
	}
	lp, ok := parseVolumeID(lid)
	if !ok || lp.Path != "" || !lp.matches(long) || lp.matches(m) {
		t.Fatalf("long ID %q parsed as %+v %v", lid, lp, ok)
	}
	for _, junk := range []string{"", "fake-vol-id", "fake-vol-id-0123456789", "models:/x", "models:relative#0123456789", "models:/a/../b#0123456789",
		"Models:/x#0123456789", "models:/x#012345678g", "models:~abc#0123456789", "models:/#0123456789"} {
		if p, ok := parseVolumeID(junk); ok {
			t.Errorf("%q parsed as %+v", junk, p)
		}
	}
}

// TestJuiceCheckerNeverLeaksSecrets: real JuiceFS metadata clients with
// URLs that fail (a refused connection; a URL JuiceFS would exit the
// process on) give errors without the password, and the process lives.
func TestJuiceCheckerNeverLeaksSecrets(t *testing.T) {
	const pw = "Sup3rS3cretPassw0rd"
	for _, tc := range []struct {
		url  string
		code codes.Code
	}{
		{"redis://:" + pw + "@127.0.0.1:1/1", codes.Unavailable},
		{"redis://:" + pw + "@127.0.0.1:1/notadb", codes.InvalidArgument},
		{"ftp://user:" + pw + "@host/x", codes.InvalidArgument},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := JuiceChecker{}.Check(ctx, tc.url, Model{Volume: "models", Path: "/m"})
		cancel()
		if err == nil {
			t.Fatalf("%s: no error", tc.url)
		}
		if c := status.Code(err); c != tc.code && !(tc.code == codes.Unavailable && c == codes.DeadlineExceeded) {
			t.Errorf("code %v (%v), want %v", c, err, tc.code)
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error holds the password: %v", err)
		}
	}
}

// TestScrub.
func TestScrub(t *testing.T) {
	u := "redis://user:p%40ss-w0rd@host:6379/1"
	msg := scrub(errors.New("dial "+u+": refused; auth p%40ss-w0rd"), u)
	for _, secret := range append(redact.Secrets(u), "p%40ss-w0rd", "p@ss-w0rd") {
		if strings.Contains(msg, secret) {
			t.Errorf("scrubbed message %q holds %q", msg, secret)
		}
	}
	if !strings.Contains(msg, "refused") {
		t.Errorf("scrubbed message %q lost the error", msg)
	}
}

// TestIdentity.
func TestIdentity(t *testing.T) {
	c, _ := newTestController(t, &fakeChecker{}, nil)
	info, err := c.Identity().GetPluginInfo(context.Background(), &csi.GetPluginInfoRequest{})
	if err != nil || info.Name != DriverName || info.VendorVersion != "test" {
		t.Fatalf("%v %v", info, err)
	}
	caps, _ := c.Identity().GetPluginCapabilities(context.Background(), &csi.GetPluginCapabilitiesRequest{})
	if len(caps.Capabilities) != 1 || caps.Capabilities[0].GetService().GetType() != csi.PluginCapability_Service_CONTROLLER_SERVICE {
		t.Errorf("capabilities %v", caps)
	}
	cc, _ := c.ControllerGetCapabilities(context.Background(), &csi.ControllerGetCapabilitiesRequest{})
	if len(cc.Capabilities) != 1 || cc.Capabilities[0].GetRpc().GetType() != csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME {
		t.Errorf("controller capabilities %v", cc)
	}
	if _, err := NewController(ControllerOptions{}); err == nil {
		t.Error("options without a version accepted")
	}
}

// TestControllerBoundsStrings: over-long names, IDs, parameters and
// secrets are InvalidArgument before any metadata call.
func TestControllerBoundsStrings(t *testing.T) {
	c, err := NewController(ControllerOptions{Version: "test", Checker: &fakeChecker{}})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 10<<10)
	caps := []*csi.VolumeCapability{roCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)}
	ctx := context.Background()
	_, err = c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: long, VolumeCapabilities: caps})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: caps, Parameters: map[string]string{KeyVolume: long}})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: caps, Secrets: map[string]string{KeyMetaURL: long}})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: long})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: long, VolumeCapabilities: caps})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "v", VolumeCapabilities: caps, VolumeContext: map[string]string{long: "x"}})
	wantCode(t, err, codes.InvalidArgument)
}
