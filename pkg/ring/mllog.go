package ring

import (
	"bytes"
	"context"
	"log/slog"
)

// slogWriter is the io.Writer behind the *log.Logger that memberlist wants.
// memberlist writes lines like "[WARN] memberlist: Refuting a suspect
// message". slogWriter maps the level prefix to a slog level, strips the
// prefixes, and logs the rest as the message. Lines that report refused
// gossip go to refusals instead: counted, and logged rate-limited.
//
// The *log.Logger must have no prefix and no flags (log.New(w, "", 0)).
// slog adds its own time.
type slogWriter struct {
	log      *slog.Logger
	refusals *refusals // nil: refusals are logged like any other line
}

var mlLevels = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

func (w slogWriter) Write(p []byte) (int, error) {
	msg := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, l := range mlLevels {
		if bytes.HasPrefix(msg, l.prefix) {
			level = l.level
			msg = bytes.TrimSpace(msg[len(l.prefix):])
			break
		}
	}
	msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
	if w.refusals != nil && level >= slog.LevelWarn && w.refusals.observe(w.log, msg) {
		return len(p), nil
	}
	ctx := context.Background()
	if !w.log.Enabled(ctx, level) {
		return len(p), nil
	}
	w.log.Log(ctx, level, string(msg))
	return len(p), nil
}
