package csi

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The node's state, persisted in StateDir/state.json (temp file, fsync,
// rename, fsync of the directory), so that a restarted plugin finds its
// mounts again:
//
//	StateDir/state.json                 this file
//	StateDir/volumes/<volume>/mnt       the shared JuiceFS mount of <volume>
//	StateDir/volumes/<volume>/meta-url  its metadata URL (0600)
//	StateDir/volumes/<volume>/mount.log the mount process's output
//	StateDir/bin/csi, StateDir/token    copies used with a launcher

const stateVersion = 1

// nodeState is everything the node plugin must remember.
type nodeState struct {
	Version int `json:"version"`
	// Mounts are the shared JuiceFS mounts, by volume name.
	Mounts map[string]*stagingState `json:"mounts"`
}

// stagingState is one shared JuiceFS mount of a whole volume.
type stagingState struct {
	Volume      string `json:"volume"`
	UUID        string `json:"uuid"`
	Dir         string `json:"dir"`
	MetaURLFile string `json:"metaURLFile"`
	LogFile     string `json:"logFile"`
	// PID is the mount process (the JuiceFS supervisor, or the launcher
	// that runs it); 0 if unknown. PIDStart is its start time (field 22 of
	// /proc/PID/stat, in clock ticks since boot), so that a reused PID is
	// not taken for it; 0 if unknown (a state of an older plugin).
	PID      int    `json:"pid"`
	PIDStart uint64 `json:"pidStart,omitempty"`
	// Targets are the bind mounts of models into targets, by target path.
	Targets map[string]*targetState `json:"targets"`
	// IdleSince is when the last target went away; nil while in use.
	IdleSince *time.Time `json:"idleSince,omitempty"`
}

// targetState is one published target.
type targetState struct {
	VolumeID string `json:"volumeID"`
	Path     string `json:"path"`
	NoExec   bool   `json:"noexec,omitempty"`
	// Created tells that the plugin made the target directory, so that
	// its unpublish removes it (and nothing else).
	Created bool `json:"created,omitempty"`
}

// proc is the recorded mount process.
func (s *stagingState) proc() Proc { return Proc{PID: s.PID, Start: s.PIDStart} }

// setProc records the mount process.
func (s *stagingState) setProc(p Proc) { s.PID, s.PIDStart = p.PID, p.Start }

// loadState reads the state file; a missing file is an empty state.
func loadState(path string) (*nodeState, error) {
	st := &nodeState{Version: stateVersion, Mounts: map[string]*stagingState{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("parse state %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state %s has version %d, this plugin knows %d", path, st.Version, stateVersion)
	}
	if st.Mounts == nil {
		st.Mounts = map[string]*stagingState{}
	}
	for name, s := range st.Mounts {
		if s == nil || s.Volume != name || s.Dir == "" {
			return nil, fmt.Errorf("state %s: bad entry for volume %q", path, name)
		}
		if s.Targets == nil {
			s.Targets = map[string]*targetState{}
		}
	}
	return st, nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, synced and renamed over path, and syncs the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this fails harmlessly
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// save persists the state.
func (s *nodeState) save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// findTarget returns the staging mount that holds target.
func (s *nodeState) findTarget(target string) (*stagingState, *targetState) {
	for _, sm := range s.Mounts {
		if t, ok := sm.Targets[target]; ok {
			return sm, t
		}
	}
	return nil, nil
}
