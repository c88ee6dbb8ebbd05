package csi

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringcache/ringcache/pkg/redact"
)

// fuzzNode is a node (fake mounter and checker) for the validation fuzz
// targets: validatePublish and validateUnpublish have no side effects.
func fuzzNode(f *testing.F, trusted bool) *Node {
	dir := f.TempDir()
	os.MkdirAll(filepath.Join(dir, "pods"), 0o755)
	bin := filepath.Join(dir, "csi-binary")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	o := NodeOptions{
		Version: "test", NodeID: "node-a", StateDir: filepath.Join(dir, "state"), KubeletDir: dir,
		MountBinary: bin, CacheNode: "127.0.0.1:1", TokenFile: filepath.Join(dir, "token"),
		Checker: &fakeChecker{}, Mounter: newFakeMounter(), AllowRequestMetaURL: !trusted,
	}
	if trusted {
		o.TrustedEngines = map[string]string{"models": nodeEngineURL}
	}
	n, err := NewNode(o)
	if err != nil {
		f.Fatal(err)
	}
	return n
}

// checkRefusal checks the error of a validation: a gRPC status of a
// client-side code, with a bounded message that holds no password.
func checkRefusal(t *testing.T, err error, secrets ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a gRPC status: %v", err)
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.PermissionDenied, codes.FailedPrecondition:
	default:
		t.Fatalf("code %v: %v", st.Code(), err)
	}
	if len(st.Message()) > 1024 {
		t.Fatalf("message of %d bytes", len(st.Message()))
	}
	for _, s := range secrets {
		for _, pw := range redact.Secrets(s) {
			if len(pw) >= 6 && pw != s && strings.Contains(st.Message(), pw) {
				t.Fatalf("message holds a password: %s", st.Message())
			}
		}
	}
}

// FuzzValidatePublish: whatever a NodePublishVolume request holds, its
// validation refuses it with a client-side code and a short message
// without secrets, or accepts a request within every bound: a confined
// target, a bounded ID, and the node's own metadata URL for a configured
// volume.
func FuzzValidatePublish(f *testing.F) {
	for _, s := range [][7]string{
		{"vol-a", "pods/p1", "models", "/models/llama", nodeEngineURL, "/models", "csi.storage.k8s.io/pod.name"},
		{"vol-a", "pods/p1", "models", "/models/llama", craftedFrag, "/models", ""},
		{"vol-a", "pods/p1", "models", "/models/llama", craftedQuery, "", ""},
		{"vol-a", "state/volumes/models/mnt", "models", "/models/llama", "", "", ""},
		{"vol-a", "pods/../outside", "models", "/models/../x", "redis://h/1", "/", "x"},
		{strings.Repeat("i", 200), "pods/" + strings.Repeat("d", 300), "models", "/m", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], true)
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], false)
	}
	nodes := map[bool]*Node{true: fuzzNode(f, true), false: fuzzNode(f, false)}
	f.Fuzz(func(t *testing.T, id, target, volume, path, metaURL, prefix, extraKey string, trusted bool) {
		n := nodes[trusted]
		root := filepath.Dir(n.podsDir)
		if !strings.HasPrefix(target, "/") {
			target = root + "/" + target
		}
		secrets := map[string]string{}
		if metaURL != "" {
			secrets[KeyMetaURL] = metaURL
		}
		if prefix != "" {
			secrets[KeyAllowedPrefix] = prefix
		}
		vc := map[string]string{KeyVolume: volume, KeyPath: path}
		if extraKey != "" {
			vc[extraKey] = metaURL
		}
		req := &csi.NodePublishVolumeRequest{
			VolumeId: id, TargetPath: target, VolumeContext: vc, Secrets: secrets,
			VolumeCapability: roCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY),
		}
		pr, err := n.validatePublish(req)
		if err != nil {
			checkRefusal(t, err, metaURL, nodeEngineURL)
			return
		}
		if len(pr.id) > maxIDLen || !utf8.ValidString(pr.id) {
			t.Fatalf("accepted id %q", pr.id)
		}
		if !within(pr.target, n.podsDir) || pr.target == n.podsDir || within(pr.target, n.o.StateDir) || len(pr.target) > maxPathLen {
			t.Fatalf("accepted target %q", pr.target)
		}
		if trusted && pr.engine.url != nodeEngineURL {
			t.Fatalf("a configured volume is mounted from a request's URL")
		}
		if !trusted {
			id, err := ParseMetaIdentity(pr.engine.url, true)
			if err != nil || id != pr.engine.id {
				t.Fatalf("accepted URL without its identity: %v", err)
			}
		}
		if _, err := cleanVolumePath(pr.model.Path, "path", false); err != nil {
			t.Fatalf("accepted model path %q", pr.model.Path)
		}
	})
}

// FuzzValidateUnpublish: an unpublish is refused with InvalidArgument or
// names a bounded ID and a target strictly under the pods directory, never
// the state dir.
func FuzzValidateUnpublish(f *testing.F) {
	for _, s := range [][2]string{
		{"vol-a", "pods/p1"}, {"vol-a", "state"}, {"vol-a", "state/volumes/models/mnt"},
		{"v", "pods"}, {"v", "pods/../outside/file"}, {"v", "/etc/passwd"}, {"v\n", "pods/x\x00"},
		{strings.Repeat("v", 129), "pods/x"}, {"v", "pods/" + strings.Repeat("a/", 3000)},
	} {
		f.Add(s[0], s[1])
	}
	n := fuzzNode(f, true)
	root := filepath.Dir(n.podsDir)
	f.Fuzz(func(t *testing.T, id, target string) {
		if !strings.HasPrefix(target, "/") {
			target = root + "/" + target
		}
		gotID, gotTarget, err := n.validateUnpublish(&csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v: %v", status.Code(err), err)
			}
			checkRefusal(t, err)
			return
		}
		if gotID != id || len(id) > maxIDLen {
			t.Fatalf("id %q", gotID)
		}
		if !within(gotTarget, n.podsDir) || gotTarget == n.podsDir || within(gotTarget, n.o.StateDir) {
			t.Fatalf("accepted target %q", gotTarget)
		}
		if _, err := n.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
			if c := status.Code(err); c != codes.NotFound && c != codes.FailedPrecondition && c != codes.Aborted {
				t.Fatalf("unpublish of a valid request: %v", err)
			}
		}
	})
}
