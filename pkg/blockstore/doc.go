// Package blockstore owns a cache node's blocks on local disk: it stores
// immutable object-store blocks (JuiceFS data blocks, usually 4 MiB) as one
// file each under a directory, keeps an in-memory LRU index of them, evicts
// cold blocks to stay under a byte capacity and above a free-space floor,
// verifies every block on every read, and rebuilds its index from the
// files' headers when a node restarts, so a restarted node serves what it
// still holds without refetching it.
//
// Blocks are never modified or invalidated, only written once, read,
// evicted or deleted. The store is a cache: any disk problem (a corrupt or
// unreadable file, a full or failing disk) turns into a miss or a refused
// Put, never into wrong bytes or a crash.
//
// # Directory layout
//
//	Dir/LOCK                       flock(2)ed while a Store has Dir open
//	Dir/tmp/<id>.<random>          a Put in progress; removed by Open
//	Dir/blocks/<id[0:2]>/<id>      one block
//
// id is the 32 lowercase hex digits of the first 16 bytes of
// SHA-256(uvarint(len(Volume)) || Volume || Object); its first two digits
// pick one of 256 fan-out directories, created on first use. A block is
// written to tmp, fsynced and renamed into place, so a block file is
// either complete or absent. The directory is not fsynced after the
// rename: a crash may lose the latest blocks, which for a cache is a miss.
//
// # Block file format (version 1)
//
// All integers are little endian.
//
//	offset size field
//	     0    4 magic "RCBK"
//	     4    2 format version (1)
//	     6    2 flags; bit 0: Meta.Compressible; other bits must be 0
//	     8    8 data length in bytes (n)
//	    16    4 CRC-32C (Castagnoli) of the data
//	    20    2 volume length in bytes (v)
//	    22    2 object length in bytes (o)
//	    24    4 reserved, written as 0
//	    28    4 CRC-32C of bytes [0,28) followed by the volume and object
//	    32    v volume
//	  32+v    o object
//	32+v+o    n data
//
// A file is valid when its header checksum matches, its key hashes to its
// file name and its size is exactly 32+v+o+n. Open checks only that much
// (headers are read in parallel; the data is not read); Get additionally
// checks the data checksum over the whole block on every read.
//
// # Recency across restarts
//
// The LRU order is kept in memory. A block file's modification time is its
// last use, rounded to a granularity of a minute (Put sets it, Get updates
// it at most once a minute per block), and Open orders the rebuilt LRU list
// by it, so the order survives a restart approximately.
package blockstore
