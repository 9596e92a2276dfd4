package main

// The -tiles mode: reads a directory that `chainlog publish` wrote as a C2SP
// tlog-tiles log the way a tlog client does, through Go's tlog.TileHashReader, which
// authenticates every tile it loads against the signed checkpoint's root.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	// C2SP fixes tiles at height 8: 256 hashes or entries in a full tile.
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	// A chainlog entry (docs/FORMAT.md), the data of one leaf.
	entryLen = 86
)

// c2spPath maps a Go tile to its C2SP path. Go's Tile.Path is tile/H/L/N[.p/W] with
// N in x-prefixed three-digit groups and L = "data" for record data; C2SP drops the
// height element (fixed at 8) and names the data level "entries".
func c2spPath(t tlog.Tile) string {
	if t.H != tileHeight {
		panic(fmt.Sprintf("c2spPath: tile height %d", t.H))
	}
	rest := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
	if t.L == -1 {
		rest = "entries" + strings.TrimPrefix(rest, "data")
	}
	return "tile/" + rest
}

// dirTiles is a tlog.TileReader over a published directory.
type dirTiles struct {
	dir string
	// reads counts the tiles returned, wider counts those served from a wider tile
	// because the requested width was not published.
	reads, wider int
}

func (d *dirTiles) Height() int { return tileHeight }

func (d *dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// locate reads tile t, or when a partial t was not published, the full tile at its
// coordinates or a wider partial one: the first t.W hashes (or entries) of any wider
// tile are t's. Go's TileHashReader asks for the tiles of the tree it was given, so a
// reader of an older checkpoint asks for partial tiles that a log may have replaced
// by full ones. A full tile cannot be made from a partial one.
func (d *dirTiles) locate(t tlog.Tile) (tlog.Tile, []byte, error) {
	widths := []int{t.W}
	if t.W < tileWidth {
		widths = append(widths, tileWidth)
		for w := t.W + 1; w < tileWidth; w++ {
			widths = append(widths, w)
		}
	}
	for _, w := range widths {
		c := t
		c.W = w
		b, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(c2spPath(c))))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return t, nil, err
		}
		if w != t.W {
			d.wider++
		}
		return c, b, nil
	}
	return t, nil, fmt.Errorf("%s: not published, nor any wider tile at its place", c2spPath(t))
}

func (d *dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		c, b, err := d.locate(t)
		if err != nil {
			return nil, err
		}
		if len(b) != c.W*tlog.HashSize {
			return nil, fmt.Errorf("%s: %d bytes, not %d hashes", c2spPath(c), len(b), c.W)
		}
		out[i] = b[:t.W*tlog.HashSize]
		d.reads++
	}
	return out, nil
}

// exact reads tile t itself, failing if it is missing.
func (d *dirTiles) exact(t tlog.Tile) []byte {
	b, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(c2spPath(t))))
	if err != nil {
		fail("%v", err)
	}
	return b
}

// entries reads the first w entries of entry bundle n.
func (d *dirTiles) entries(n int64, w int) ([][]byte, error) {
	c, b, err := d.locate(tlog.Tile{H: tileHeight, L: -1, N: n, W: w})
	if err != nil {
		return nil, err
	}
	path := c2spPath(c)
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%s: a truncated length", path)
		}
		l := int(binary.BigEndian.Uint16(b))
		if l != entryLen || len(b) < 2+l {
			return nil, fmt.Errorf("%s: entry %d: length %d of %d bytes left, not a %d-byte entry",
				path, len(out), l, len(b)-2, entryLen)
		}
		out = append(out, b[2:2+l])
		b = b[2+l:]
	}
	if len(out) != c.W {
		return nil, fmt.Errorf("%s: %d entries, not %d", path, len(out), c.W)
	}
	return out[:w], nil
}

// leafTileWidth is the width of leaf tile n in a tree of size leaves.
func leafTileWidth(n, size int64) int {
	if rest := size - n*tileWidth; rest < tileWidth {
		return int(rest)
	}
	return tileWidth
}

// sample is the indices below n to check: all of a small tree; else the first and
// last few, both sides of every tile boundary, and a spread in between.
func sample(n int64) []int64 {
	set := map[int64]bool{}
	add := func(i int64) {
		if i >= 0 && i < n {
			set[i] = true
		}
	}
	if n <= 600 {
		for i := int64(0); i < n; i++ {
			add(i)
		}
	} else {
		for i := int64(0); i < 17; i++ {
			add(i)
			add(n - 1 - i)
		}
		for b := int64(tileWidth); b < n; b += tileWidth {
			add(b - 1)
			add(b)
			add(b + 1)
		}
		x := uint64(0x9e3779b97f4a7c15)
		for k := 0; k < 256; k++ {
			x = x*6364136223846793005 + 1442695040888963407
			add(int64((x >> 11) % uint64(n)))
		}
	}
	out := make([]int64, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

type tilesCheck struct {
	dir     string
	tiles   *dirTiles
	cp      checkpoint
	reader  tlog.HashReader
	bundles map[int64][][]byte
	entries int
	// tilesCompared counts the tiles compared with those computed from the entries.
	tilesCompared int
	inclusions    int
	trees         int
}

// entry is leaf i's entry, from its bundle in the checkpoint's tree.
func (c *tilesCheck) entry(i int64) []byte {
	n := i / tileWidth
	b, ok := c.bundles[n]
	if !ok {
		var err error
		b, err = c.tiles.entries(n, leafTileWidth(n, c.cp.size))
		if err != nil {
			fail("%s: %v", c.dir, err)
		}
		c.bundles[n] = b
	}
	return b[i%tileWidth]
}

// prove checks leaf i of a tree (t leaves, root th) with tlog.ProveRecord, read through
// r, and tlog.CheckRecord against the hash of i's published entry.
func (c *tilesCheck) prove(r tlog.HashReader, t int64, th tlog.Hash, i int64) {
	p, err := tlog.ProveRecord(t, i, r)
	if err != nil {
		fail("%s: tlog.ProveRecord(%d, %d): %v", c.dir, t, i, err)
	}
	if err := tlog.CheckRecord(p, t, th, i, tlog.RecordHash(c.entry(i))); err != nil {
		fail("%s: tlog.CheckRecord(size %d, index %d) with the hash of its published entry: %v",
			c.dir, t, i, err)
	}
	c.inclusions++
}

// consistent checks that the tree of size m, whose root is oldRoot, is a prefix of the
// checkpoint's, with tlog.ProveTree and tlog.CheckTree.
func (c *tilesCheck) consistent(m int64, oldRoot tlog.Hash) {
	p, err := tlog.ProveTree(c.cp.size, m, c.reader)
	if err != nil {
		fail("%s: tlog.ProveTree(%d, %d): %v", c.dir, c.cp.size, m, err)
	}
	if err := tlog.CheckTree(p, c.cp.size, c.cp.root, m, oldRoot); err != nil {
		fail("%s: tlog.CheckTree(%d -> %d): %v", c.dir, m, c.cp.size, err)
	}
	c.trees++
}

func checkTiles(dir string, verifier note.Verifier, prevs []string) {
	cpFile := filepath.Join(dir, "checkpoint")
	cp := openCheckpoint(readFile(cpFile), verifier, cpFile)
	if !strings.HasPrefix(cp.origin, "chainlog/") {
		fail("%s: origin %q is not chainlog/<id>", cpFile, cp.origin)
	}
	d := &dirTiles{dir: dir}
	c := &tilesCheck{
		dir:     dir,
		tiles:   d,
		cp:      cp,
		reader:  tlog.TileHashReader(tlog.Tree{N: cp.size, Hash: cp.root}, d),
		bundles: map[int64][][]byte{},
	}

	if cp.size > 0 {
		// The reader authenticates the tiles on the right edge against the root; this
		// recomputes the root from them once more, through the public API.
		th, err := tlog.TreeHash(cp.size, c.reader)
		if err != nil {
			fail("%s: tlog.TreeHash(%d): %v", dir, cp.size, err)
		}
		if th != cp.root {
			fail("%s: the tiles' root at %d is not the checkpoint's", dir, cp.size)
		}
	}

	// The whole tree from the entries alone, with tlog.StoredHashes: its root must be the
	// checkpoint's and every tile of the tree must be the one published. This does not
	// lean on TileHashReader, which authenticates only some of the tiles it returns: its
	// loop over the tiles below the right edge starts at len(stx), counting the edge's
	// subtrees and not the (fewer) tiles holding them, so it can skip the tiles it
	// fetched for the requested hashes (proofs still fail, at CheckRecord).
	var stored []tlog.Hash
	mem := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for k, x := range idx {
			if x < 0 || x >= int64(len(stored)) {
				return nil, fmt.Errorf("stored hash %d of %d", x, len(stored))
			}
			out[k] = stored[x]
		}
		return out, nil
	})
	for i := int64(0); i < cp.size; i++ {
		hs, err := tlog.StoredHashes(i, c.entry(i), mem)
		if err != nil {
			fail("%s: tlog.StoredHashes(%d): %v", dir, i, err)
		}
		stored = append(stored, hs...)
		c.entries++
	}
	if th, err := tlog.TreeHash(cp.size, mem); err != nil || th != cp.root {
		fail("%s: the root of the published entries is not the checkpoint's (%v)", dir, err)
	}
	for l := 0; cp.size>>(tileHeight*l) > 0; l++ {
		nodes := cp.size >> (tileHeight * l)
		for n := int64(0); n*tileWidth < nodes; n++ {
			t := tlog.Tile{H: tileHeight, L: l, N: n, W: leafTileWidth(n, nodes)}
			want, err := tlog.ReadTileData(t, mem)
			if err != nil {
				fail("%s: tlog.ReadTileData(%v): %v", dir, t, err)
			}
			got := d.exact(t)
			if !bytes.Equal(got, want) {
				fail("%s: %s is not the tile of the published entries", dir, c2spPath(t))
			}
			c.tilesCompared++
		}
	}

	for _, i := range sample(cp.size) {
		c.prove(c.reader, cp.size, cp.root, i)
	}
	// Older trees: each root comes from the same authenticated tiles.
	for _, i := range sample(cp.size) {
		m := i + 1
		oldRoot, err := tlog.TreeHash(m, c.reader)
		if err != nil {
			fail("%s: tlog.TreeHash(%d): %v", dir, m, err)
		}
		c.consistent(m, oldRoot)
	}

	// Earlier checkpoints a client kept: the log extends each, and the tiles of each
	// older tree (partial ones the log has since outgrown included) still prove it.
	for _, f := range prevs {
		old := openCheckpoint(readFile(f), verifier, f)
		if old.origin != cp.origin {
			fail("%s: origin %q, the log's is %q", f, old.origin, cp.origin)
		}
		if old.size > cp.size {
			fail("%s: size %d, more than the log's %d: a rollback", f, old.size, cp.size)
		}
		if old.size == 0 {
			continue
		}
		th, err := tlog.TreeHash(old.size, c.reader)
		if err != nil {
			fail("%s: tlog.TreeHash(%d): %v", dir, old.size, err)
		}
		if th != old.root {
			fail("%s: the log's root at %d is not the earlier checkpoint's", f, old.size)
		}
		c.consistent(old.size, old.root)
		oldReader := tlog.TileHashReader(tlog.Tree{N: old.size, Hash: old.root}, d)
		for _, i := range []int64{0, old.size / 2, old.size - 1} {
			c.prove(oldReader, old.size, old.root, i)
		}
	}

	fmt.Printf("ok: tiles %s: checkpoint %s size %d signed by %s; %d entries hashed; "+
		"%d tiles equal the tree of the entries; %d inclusion, %d consistency (%d earlier checkpoints); "+
		"%d tiles read, %d from a wider tile\n",
		dir, cp.origin, cp.size, verifier.Name(), c.entries, c.tilesCompared, c.inclusions, c.trees,
		len(prevs), d.reads, d.wider)
}
