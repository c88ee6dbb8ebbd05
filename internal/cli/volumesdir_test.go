package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

const testURL = "redis://:hunter2@redis:6379/1"

// secretDir lays dir out as the kubelet mounts a Secret: the keys are
// symlinks into ..data, a symlink to the ..<timestamp> directory.
func secretDir(t *testing.T, dir string, keys map[string]string) {
	t.Helper()
	ts := filepath.Join(dir, "..2026_12_01_10_00_00.123")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for k, v := range keys {
		if err := os.WriteFile(filepath.Join(ts, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadVolumesDir(t *testing.T) {
	type file struct{ name, content string }
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // lays out dir; nil: files
		files []file
		want  map[string]string
		err   string // a part of the error; "" for none
		is    error  // the error wraps it, if set
	}{
		{name: "one file, trailing newline", files: []file{{"models", testURL + "\n"}}, want: map[string]string{"models": testURL}},
		{name: "white space and CRLF trimmed", files: []file{{"models", " \t" + testURL + "\r\n\n"}}, want: map[string]string{"models": testURL}},
		{name: "several volumes", files: []file{{"models", testURL}, {"team-a", "redis://b/2"}, {"Team_B.v2", "mysql://u:p@(db:3306)/j"}},
			want: map[string]string{"models": testURL, "team-a": "redis://b/2", "Team_B.v2": "mysql://u:p@(db:3306)/j"}},
		{name: "empty dir", want: map[string]string{}},
		{name: "kubernetes secret volume", setup: func(t *testing.T, dir string) {
			secretDir(t, dir, map[string]string{"models": testURL + "\n", "team-a": "redis://b/2"})
		}, want: map[string]string{"models": testURL, "team-a": "redis://b/2"}},
		{name: "dot files and directories skipped", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ".hidden"), nil, 0o644)
			os.Mkdir(filepath.Join(dir, "lost+found"), 0o700)
			os.Mkdir(filepath.Join(dir, "sub"), 0o755)
			os.Symlink("sub", filepath.Join(dir, "link-to-dir"))
		}, files: []file{{"models", testURL}}, want: map[string]string{"models": testURL}},
		{name: "symlink out of the dir followed", setup: func(t *testing.T, dir string) {
			out := filepath.Join(t.TempDir(), "url")
			os.WriteFile(out, []byte(testURL), 0o600)
			os.Symlink(out, filepath.Join(dir, "models"))
		}, want: map[string]string{"models": testURL}},
		{name: "missing dir", setup: func(t *testing.T, dir string) { os.Remove(dir) }, err: "no such file", is: fs.ErrNotExist},
		{name: "dir is a file", setup: func(t *testing.T, dir string) {
			os.Remove(dir)
			os.WriteFile(dir, []byte(testURL), 0o600)
		}, err: "not a directory"},
		{name: "empty file", files: []file{{"models", testURL}, {"empty", " \n"}}, err: `volume "empty": metadata url file `},
		{name: "empty file text", files: []file{{"empty", ""}}, err: "is empty"},
		{name: "oversize file", files: []file{{"big", strings.Repeat("x", MaxMetaURLFile+1)}}, err: "is over 16384 bytes"},
		{name: "file of the bound", files: []file{{"big", strings.Repeat("x", MaxMetaURLFile)}}, want: map[string]string{"big": strings.Repeat("x", MaxMetaURLFile)}},
		{name: "two lines", files: []file{{"models", testURL + "\nredis://other/2\n"}}, err: "more than one line"},
		{name: "control character", files: []file{{"models", "redis://a\x00/1"}}, err: "control character"},
		{name: "bad volume name: space", files: []file{{"my models", testURL}}, err: `volume "my models": not a volume name`, is: ErrVolumeName},
		{name: "bad volume name: backup", files: []file{{"models~", testURL}}, is: ErrVolumeName},
		{name: "bad volume name: too long", files: []file{{strings.Repeat("a", 254), testURL}}, is: ErrVolumeName},
		{name: "dangling symlink", setup: func(t *testing.T, dir string) {
			os.Symlink("nowhere", filepath.Join(dir, "models"))
		}, err: `volume "models"`, is: fs.ErrNotExist},
		{name: "fifo", setup: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "models"), 0o600); err != nil {
				t.Skip(err)
			}
		}, err: "not a regular file"},
		{name: "unreadable file", setup: func(t *testing.T, dir string) {
			if os.Geteuid() == 0 {
				t.Skip("root reads every file")
			}
			os.WriteFile(filepath.Join(dir, "models"), []byte(testURL), 0o000)
		}, err: `volume "models"`, is: fs.ErrPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "volumes")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			got, err := ReadVolumesDir(dir)
			if tt.err == "" && tt.is == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
				// ReadVolumeFile reads what ReadVolumesDir reads.
				for name, u := range tt.want {
					if v, err := ReadVolumeFile(dir, name); err != nil || v != u {
						t.Errorf("ReadVolumeFile(%q) = %q, %v; want %q", name, v, err, u)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, got %q", got)
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %q, want it to contain %q", err, tt.err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "xxxxxxxx") {
				t.Errorf("error %q shows the file's content", err)
			}
		})
	}
}

func TestReadVolumeFile(t *testing.T) {
	dir := t.TempDir()
	secretDir(t, dir, map[string]string{"models": testURL + "\n"})
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600)
	if u, err := ReadVolumeFile(dir, "models"); err != nil || u != testURL {
		t.Errorf("models: %q, %v", u, err)
	}
	for _, tt := range []struct {
		volume, err string
		is          error
	}{
		{"missing", `volume "missing"`, fs.ErrNotExist},
		{"sub", "is a directory", fs.ErrNotExist}, // ReadVolumesDir skips it
		{"empty", "metadata url file " + filepath.Join(dir, "empty") + " is empty", nil},
		{"", "not a volume name", ErrVolumeName},
		{"..data", "not a volume name", ErrVolumeName},
		{".", "not a volume name", ErrVolumeName},
		{"../models", "not a volume name", ErrVolumeName},
		{"a/b", "not a volume name", ErrVolumeName},
		{`a\b`, "not a volume name", ErrVolumeName},
	} {
		u, err := ReadVolumeFile(dir, tt.volume)
		if err == nil || !strings.Contains(err.Error(), tt.err) || (tt.is != nil && !errors.Is(err, tt.is)) {
			t.Errorf("ReadVolumeFile(%q) = %q, %v; want an error with %q (wrapping %v)", tt.volume, u, err, tt.err, tt.is)
		}
		if tt.volume != "missing" && tt.volume != "sub" && errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadVolumeFile(%q): %v wraps fs.ErrNotExist", tt.volume, err)
		}
	}
}

// FuzzMetaURLOfFile: a file's URL is its trimmed content, non-empty, within
// the bound, without control characters; an error never shows the content.
func FuzzMetaURLOfFile(f *testing.F) {
	for _, s := range []string{testURL, testURL + "\n", " \r\n", "", "a\nb", "redis://a\x7f", strings.Repeat("y", MaxMetaURLFile+1), "\ufeff" + testURL, "\u00a0x\u2028"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := metaURLOfFile(b)
		if err != nil {
			if u != "" {
				t.Errorf("error %v with url %q", err, u)
			}
			if s := strings.TrimSpace(string(b)); len(s) > 3 && strings.Contains(err.Error(), s) {
				t.Errorf("error %q shows the content", err)
			}
			return
		}
		if u != strings.TrimSpace(string(b)) || u == "" || len(b) > MaxMetaURLFile {
			t.Errorf("%q gave url %q", b, u)
		}
		for _, r := range u {
			if r < 0x20 || r == 0x7f {
				t.Errorf("url %q holds control character %q", u, r)
			}
		}
	})
}

// FuzzCheckVolumeName: an accepted name is one file name in the dir, never a
// dot entry or a path.
func FuzzCheckVolumeName(f *testing.F) {
	for _, s := range []string{"models", "team-a", "Team_B.v2", "", ".", "..", "..data", "a/b", `a\b`, "a b", "models~", strings.Repeat("a", 253), strings.Repeat("a", 254), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckVolumeName(name) != nil {
			return
		}
		if name == "" || len(name) > 253 || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/\\ \x00") || filepath.Base(name) != name || filepath.Clean(name) != name {
			t.Errorf("accepted %q", name)
		}
	})
}
