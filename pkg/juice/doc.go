// Package juice owns everything ringcache knows about JuiceFS: opening a
// volume's metadata engine and its origin object store with the JuiceFS
// v1.3.1 libraries (pkg/meta and pkg/object), and resolving paths to the
// block keys of their data (the keys themselves are pkg/blockkey's).
//
// The origin is opened the way a JuiceFS client opens it (storage type,
// bucket, credentials and the "<volume name>/" prefix from the volume's
// format) but without the encryption layer: ringcache caches and serves the
// objects' bytes exactly as the object store holds them, compressed and
// encrypted when the volume is, and never holds more plaintext than the
// object store does.
package juice
