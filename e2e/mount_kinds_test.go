package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/ringcache/ringcache/internal/juicetest"
)

func rsaKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}

// TestMountVolumeKinds runs the two-mount read test on every kind of volume
// JuiceFS can create: the ring caches the objects as stored, and JuiceFS's
// client decompresses and decrypts above it.
func TestMountVolumeKinds(t *testing.T) {
	kinds := []struct {
		name string
		fo   func(t *testing.T) juicetest.FormatOptions
	}{
		{"lz4", func(*testing.T) juicetest.FormatOptions { return juicetest.FormatOptions{Compression: "lz4"} }},
		{"zstd", func(*testing.T) juicetest.FormatOptions { return juicetest.FormatOptions{Compression: "zstd"} }},
		{"hash-prefix", func(*testing.T) juicetest.FormatOptions { return juicetest.FormatOptions{HashPrefix: true} }},
		{"block-size-1024", func(*testing.T) juicetest.FormatOptions { return juicetest.FormatOptions{BlockSize: 1024} }},
		{"block-size-16384", func(*testing.T) juicetest.FormatOptions { return juicetest.FormatOptions{BlockSize: 16384} }},
		{"encrypted", func(t *testing.T) juicetest.FormatOptions {
			return juicetest.FormatOptions{EncryptKeyPEM: rsaKeyPEM(t)}
		}},
		{"encrypted-zstd-hash-prefix", func(t *testing.T) juicetest.FormatOptions {
			return juicetest.FormatOptions{EncryptKeyPEM: rsaKeyPEM(t), Compression: "zstd", HashPrefix: true}
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, k.fo(t))
			e.write(t, sampleModel(t, "/models/m", 20<<20))
			nodes, _ := startCluster(t, e)
			want := e.wantTree("/models/m")
			m1 := e.mount(t, mountOpts{node: nodes[0], subdir: "/models/m"})
			m2 := e.mount(t, mountOpts{node: nodes[2], subdir: "/models/m"})

			e.proxy.Reset()
			checkTree(t, readTree(t, m1.dir), want)
			if n := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/"); n == 0 {
				t.Error("the first mount's cold read caused no origin GETs")
			}
			e.proxy.Reset()
			checkTree(t, readTree(t, m2.dir), want)
			if n := e.proxy.GetsWithPrefix(e.format.Name + "/chunks/"); n != 0 {
				t.Errorf("second mount caused %d origin GETs of data blocks, want 0", n)
			}
			// The ring holds the objects as the object store does: for a
			// compressed or encrypted volume that is not the plaintext.
			blocks := e.blocks(t)
			for key, stored := range blocks {
				owner := nodes[0].client(t)
				got, _, err := owner.Read(t.Context(), "models", key, 0, -1)
				if err != nil {
					t.Fatalf("read %s: %v", key, err)
				}
				if string(got) != string(stored) {
					t.Fatalf("%s: ring bytes differ from the object store's", key)
				}
				break
			}
		})
	}
}
