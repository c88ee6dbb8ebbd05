package csi

import (
	"os"
	"path/filepath"
	"time"
)

// markIdleLocked starts the unmount delay when sm has no target left; n.mu
// is held.
func (n *Node) markIdleLocked(sm *stagingState) {
	if len(sm.Targets) > 0 || n.closed {
		return
	}
	if sm.IdleSince == nil {
		now := n.clock.Now()
		sm.IdleSince = &now
	}
	n.scheduleIdleLocked(sm.Volume, sm.IdleSince.Add(n.o.UnmountDelay).Sub(n.clock.Now()))
}

func (n *Node) scheduleIdleLocked(volume string, after time.Duration) {
	n.stopTimerLocked(volume)
	if n.closed {
		return
	}
	// The callback is counted in wg, so Close waits for an unmount that
	// has started.
	n.wg.Add(1)
	n.timers[volume] = n.clock.AfterFunc(max(after, 0), func() {
		defer n.wg.Done()
		n.unmountIfIdle(volume)
	})
}

// stopTimerLocked cancels volume's pending unmount, if any.
func (n *Node) stopTimerLocked(volume string) {
	if t := n.timers[volume]; t != nil {
		if t.Stop() {
			n.wg.Done() // it will not run
		}
		delete(n.timers, volume)
	}
}

// unmountIfIdle removes a shared mount that has had no target for
// UnmountDelay.
func (n *Node) unmountIfIdle(volume string) {
	unlock := n.lockVolume(volume)
	defer unlock()
	n.mu.Lock()
	sm := n.state.Mounts[volume]
	if n.closed || sm == nil || len(sm.Targets) > 0 || sm.IdleSince == nil {
		n.mu.Unlock()
		return
	}
	if wait := sm.IdleSince.Add(n.o.UnmountDelay).Sub(n.clock.Now()); wait > 0 {
		n.scheduleIdleLocked(volume, wait)
		n.mu.Unlock()
		return
	}
	delete(n.timers, volume)
	n.mu.Unlock()
	if err := n.removeStaging(sm); err != nil {
		n.log.Error("unmount idle shared mount; retrying later", "volume", volume, "error", err.Error())
		n.mu.Lock()
		if !n.closed {
			n.scheduleIdleLocked(volume, max(n.o.UnmountDelay, 5*time.Second))
		}
		n.mu.Unlock()
		return
	}
	n.log.Info("idle shared mount removed", "volume", volume, "dir", sm.Dir)
}

// removeStaging unmounts a shared mount, removes its files and forgets
// it. The volume lock is held.
func (n *Node) removeStaging(sm *stagingState) error {
	if err := n.mounter.StopFUSE(sm.Dir, sm.proc()); err != nil {
		return err
	}
	// Never RemoveAll: only the files the plugin made, and directories
	// that must be empty.
	os.Remove(sm.MetaURLFile)
	os.Remove(sm.LogFile)
	os.Remove(sm.Dir)
	os.Remove(filepath.Dir(sm.Dir))
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state.Mounts[sm.Volume] == sm {
		delete(n.state.Mounts, sm.Volume)
	}
	return n.saveLocked()
}
