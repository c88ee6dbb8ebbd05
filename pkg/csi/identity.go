package csi

import (
	"context"
	"log/slog"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Identity is the CSI identity service. The controller and the node
// plugin each serve one; they differ only in their readiness check.
type Identity struct {
	csi.UnimplementedIdentityServer
	name, version string
	ready         func(ctx context.Context) error
	log           *slog.Logger
}

// newIdentity returns an identity service; ready returns nil when the
// plugin can serve (nil ready: always).
func newIdentity(name, version string, ready func(ctx context.Context) error, log *slog.Logger) *Identity {
	if name == "" {
		name = DriverName
	}
	return &Identity{name: name, version: version, ready: ready, log: log}
}

// GetPluginInfo implements csi.IdentityServer.
func (i *Identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: i.name, VendorVersion: i.version}, nil
}

// GetPluginCapabilities implements csi.IdentityServer. The plugin has a
// controller service (dynamic provisioning); volumes have no topology: a
// model is reachable from every node.
func (i *Identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
			Type: csi.PluginCapability_Service_CONTROLLER_SERVICE,
		}},
	}}}, nil
}

// Probe implements csi.IdentityServer: ready is false, with the reason
// logged, until the readiness check passes.
func (i *Identity) Probe(ctx context.Context, _ *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	if i.ready != nil {
		if err := i.ready(ctx); err != nil {
			i.log.Warn("probe: not ready", "reason", err.Error())
			return &csi.ProbeResponse{Ready: wrapperspb.Bool(false)}, nil
		}
	}
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}
