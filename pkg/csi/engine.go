package csi

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Which metadata engine a publish mounts is the node's choice, never the
// request's (docs/csi.md, "Threat model"):
//
//   - A volume configured on the node (NodeOptions.TrustedEngines,
//     --volumes-dir) is mounted with the node's own URL. A request only
//     names the volume; a metaurl in its secret is optional and, when
//     present, must name the same engine by parsed identity
//     (ParseMetaIdentity: scheme, user, host:port, database), or the
//     publish is PermissionDenied. Its password is never used.
//   - A node without configured volumes refuses every publish
//     (FailedPrecondition) unless the admin opted in to request URLs
//     (NodeOptions.AllowRequestMetaURL, --allow-request-metaurl). Then the
//     request's URL must pass ParseMetaIdentity, and while the volume has a
//     shared mount, it must name the engine the mount was made from.
//
// A request URL is written to the node's files only once the publish has
// fully succeeded.

// engine is the metadata engine a publish uses.
type engine struct {
	url string       // what the checker and the mount process get
	id  MetaIdentity // its identity; zero when unknown (a node URL of another kind)
	// fromRequest: url is the request's (AllowRequestMetaURL).
	fromRequest bool
}

// address is what logs show of the engine: host:port/db, never a password.
func (e engine) address() string {
	if e.id.Addr == "" {
		return "(not a redis URL)"
	}
	return e.id.Address()
}

// trustedEngine is a configured volume's URL and its identity.
type trustedEngine struct {
	url   string
	id    MetaIdentity
	idErr error // why url has no comparable identity
}

func parseTrusted(m map[string]string) map[string]trustedEngine {
	if m == nil {
		return nil
	}
	out := make(map[string]trustedEngine, len(m))
	for v, u := range m {
		u = strings.TrimSpace(u)
		id, err := ParseMetaIdentity(u, false)
		out[v] = trustedEngine{url: u, id: id, idErr: err}
	}
	return out
}

// chooseEngine picks the engine of a publish of volume with secrets (see
// the rules above). Errors are gRPC status errors that never hold a URL.
func (n *Node) chooseEngine(volume string, secrets map[string]string) (engine, error) {
	reqURL := strings.TrimSpace(secrets[KeyMetaURL])
	if n.trusted != nil {
		te, ok := n.trusted[volume]
		if !ok {
			return engine{}, status.Errorf(codes.PermissionDenied, "volume %q is not one this node serves (it is not in the node's --volumes-dir)", volume)
		}
		if reqURL == "" {
			return engine{url: te.url, id: te.id}, nil
		}
		rid, err := ParseMetaIdentity(reqURL, true)
		if err != nil {
			return engine{}, status.Errorf(codes.InvalidArgument, "the node-publish secret's %s: %v", KeyMetaURL, err)
		}
		if te.idErr != nil {
			return engine{}, status.Errorf(codes.PermissionDenied, "this node's metadata URL of volume %q cannot be compared with one from a request; leave %s out of the node-publish secret", volume, KeyMetaURL)
		}
		if rid != te.id {
			return engine{}, status.Errorf(codes.PermissionDenied, "the node-publish secret's %s names the metadata engine %s, not the one this node mounts volume %q from", KeyMetaURL, rid.Address(), volume)
		}
		// The node's URL, with the node's password.
		return engine{url: te.url, id: te.id}, nil
	}
	if !n.o.AllowRequestMetaURL {
		return engine{}, status.Errorf(codes.FailedPrecondition, "this node mounts only the volumes configured on it (--volumes-dir) and has none; metadata URLs from requests are refused unless the node runs with --allow-request-metaurl")
	}
	if reqURL == "" {
		return engine{}, status.Errorf(codes.InvalidArgument, "the node-publish secret (csi.storage.k8s.io/node-publish-secret-name, or nodePublishSecretRef) must hold the volume's metadata URL under key %q", KeyMetaURL)
	}
	rid, err := ParseMetaIdentity(reqURL, true)
	if err != nil {
		return engine{}, status.Errorf(codes.InvalidArgument, "the node-publish secret's %s: %v", KeyMetaURL, err)
	}
	return engine{url: reqURL, id: rid, fromRequest: true}, nil
}

// mountURL is the URL a (re)mount of sm uses: the node's own for a
// configured volume, else the one the shared mount was made from.
func (n *Node) mountURL(sm *stagingState) (string, error) {
	if te, ok := n.trusted[sm.Volume]; ok {
		return te.url, nil
	}
	if n.trusted != nil {
		return "", fmt.Errorf("volume %q is no longer configured on this node", sm.Volume)
	}
	b, err := os.ReadFile(sm.MetaURLFile)
	if err != nil {
		return "", fmt.Errorf("read the metadata URL file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// errOtherEngine: a shared mount was made from another engine than the
// one it must use now.
var errOtherEngine = errors.New("the shared mount was made from another metadata engine")

// checkMountEngine reports errOtherEngine when the shared mount sm was not
// made from want (compared by identity; by the exact URL when either has
// none).
func checkMountEngine(sm *stagingState, want engine) error {
	b, err := os.ReadFile(sm.MetaURLFile)
	if err != nil {
		return fmt.Errorf("read the metadata URL file: %w", err)
	}
	stored := strings.TrimSpace(string(b))
	if want.id.Addr == "" {
		if stored != want.url {
			return errOtherEngine
		}
		return nil
	}
	if sid, err := ParseMetaIdentity(stored, false); err != nil || sid != want.id {
		return errOtherEngine
	}
	return nil
}
