// Command interop checks chainlog's SHA-256 checkpoints and Merkle proofs with Go's
// reference implementation: golang.org/x/mod/sumdb/note (signed notes, Ed25519 keys)
// and golang.org/x/mod/sumdb/tlog (RFC 6962 trees and proofs).
//
// Usage:
//
//	interop -vkey PREFIX.pub -checkpoint NOTE [-signer PREFIX.key]
//	        [-inclusion PROOF.json]... [-consistency PROOF.json]...
//	interop -vkey PREFIX.pub -tiles DIR [-prev NOTE]...
//
// Proof files are the JSON that `chainlog prove --json` and
// `chainlog prove-consistency --json` print. A proof whose tree size equals the
// checkpoint's must also have the checkpoint's root.
//
// With -tiles, DIR is a log `chainlog publish` wrote (c2sp.org/tlog-tiles), read the
// way a tlog client reads one: see tiles.go. Exits 1 on the first failure, saying what
// failed, and 2 on bad usage.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(s string) error { *f = append(*f, s); return nil }

type inclusionProof struct {
	Kind     string   `json:"kind"`
	Alg      string   `json:"alg"`
	Index    *int64   `json:"seq"`
	TreeSize *int64   `json:"size"`
	LeafHash string   `json:"hash"`
	Proof    []string `json:"proof"`
	Root     string   `json:"root"`
}

type consistencyProof struct {
	Kind    string   `json:"kind"`
	Alg     string   `json:"alg"`
	OldSize *int64   `json:"old_size"`
	NewSize *int64   `json:"size"`
	OldRoot string   `json:"old_root"`
	NewRoot string   `json:"root"`
	Proof   []string `json:"proof"`
}

// checkpoint is a parsed C2SP tlog-checkpoint body. tlog.ParseTree expects the older
// go.sum tree format, whose first line is fixed, so the body is parsed here.
type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "interop: FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func usage(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "interop: "+format+"\n", args...)
	os.Exit(2)
}

func readFile(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		usage("%v", err)
	}
	return b
}

func parseHex(s, what, file string) tlog.Hash {
	var h tlog.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		fail("%s: %s %q is not %d hex-encoded bytes", file, what, s, tlog.HashSize)
	}
	copy(h[:], b)
	return h
}

func parseHexList(list []string, file string) []tlog.Hash {
	out := make([]tlog.Hash, len(list))
	for i, s := range list {
		out[i] = parseHex(s, fmt.Sprintf("proof[%d]", i), file)
	}
	return out
}

// decodeStrict rejects unknown fields and trailing data, as chainlog's parser does.
func decodeStrict(data []byte, v interface{}, file string) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		fail("%s: %v", file, err)
	}
	if d.More() {
		fail("%s: trailing data after the JSON object", file)
	}
}

func parseCheckpoint(text string) checkpoint {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if !strings.HasSuffix(text, "\n") || len(lines) < 3 {
		fail("checkpoint body is not origin, size and root lines: %q", text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint size %q is not a canonical decimal", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil || base64.StdEncoding.EncodeToString(root[:]) != lines[2] {
		fail("checkpoint root %q is not canonical base64 of 32 bytes", lines[2])
	}
	return checkpoint{origin: lines[0], size: size, root: root}
}

// openCheckpoint verifies a signed checkpoint note and parses its body.
func openCheckpoint(msg []byte, verifier note.Verifier, file string) checkpoint {
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("note.Open(%s): %v", file, err)
	}
	return parseCheckpoint(n.Text)
}

func main() {
	var inclusions, consistencies files
	vkeyFile := flag.String("vkey", "", "verifier key file (PREFIX.pub)")
	noteFile := flag.String("checkpoint", "", "signed checkpoint note file")
	signerFile := flag.String("signer", "", "optional signer key file (PREFIX.key): re-sign the body with Go and compare")
	flag.Var(&inclusions, "inclusion", "inclusion proof JSON file (repeatable)")
	flag.Var(&consistencies, "consistency", "consistency proof JSON file (repeatable)")
	tilesDir := flag.String("tiles", "", "a published tlog-tiles directory to read as a client")
	var prevs files
	flag.Var(&prevs, "prev", "with -tiles: an earlier checkpoint of the log, which it must extend (repeatable)")
	flag.Parse()
	tilesMode := *tilesDir != ""
	if *vkeyFile == "" || (*noteFile == "") == !tilesMode || flag.NArg() != 0 ||
		(tilesMode && (*signerFile != "" || len(inclusions)+len(consistencies) > 0)) ||
		(!tilesMode && len(prevs) > 0) {
		flag.Usage()
		os.Exit(2)
	}

	vkey := strings.TrimSpace(string(readFile(*vkeyFile)))
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("note.NewVerifier(%s): %v", *vkeyFile, err)
	}
	if tilesMode {
		checkTiles(*tilesDir, verifier, prevs)
		return
	}
	msg := readFile(*noteFile)
	cp := openCheckpoint(msg, verifier, *noteFile)
	if *signerFile != "" {
		// Ed25519 signatures are deterministic, so Go signing the same body with the
		// same key must give the same note byte for byte.
		signer, err := note.NewSigner(strings.TrimSpace(string(readFile(*signerFile))))
		if err != nil {
			fail("note.NewSigner(%s): %v", *signerFile, err)
		}
		n, err := note.Open(msg, note.VerifierList(verifier))
		if err != nil {
			fail("note.Open(%s): %v", *noteFile, err)
		}
		again, err := note.Sign(&note.Note{Text: n.Text}, signer)
		if err != nil {
			fail("note.Sign: %v", err)
		}
		if !bytes.Equal(again, msg) {
			fail("Go's signature of the checkpoint differs from chainlog's:\n%s\nvs\n%s", again, msg)
		}
	}

	for _, f := range inclusions {
		var p inclusionProof
		decodeStrict(readFile(f), &p, f)
		if p.Index == nil || p.TreeSize == nil || p.Proof == nil {
			fail("%s: missing seq, size or proof", f)
		}
		leaf := parseHex(p.LeafHash, "hash", f)
		root := parseHex(p.Root, "root", f)
		if err := tlog.CheckRecord(parseHexList(p.Proof, f), *p.TreeSize, root, *p.Index, leaf); err != nil {
			fail("%s: tlog.CheckRecord(index %d, size %d): %v", f, *p.Index, *p.TreeSize, err)
		}
		if *p.TreeSize == cp.size && root != cp.root {
			fail("%s: root at size %d is not the checkpoint's", f, cp.size)
		}
	}

	for _, f := range consistencies {
		var p consistencyProof
		decodeStrict(readFile(f), &p, f)
		if p.OldSize == nil || p.NewSize == nil || p.Proof == nil {
			fail("%s: missing old_size, new_size or proof", f)
		}
		oldRoot := parseHex(p.OldRoot, "old_root", f)
		newRoot := parseHex(p.NewRoot, "root", f)
		if err := tlog.CheckTree(parseHexList(p.Proof, f), *p.NewSize, newRoot, *p.OldSize, oldRoot); err != nil {
			fail("%s: tlog.CheckTree(%d -> %d): %v", f, *p.OldSize, *p.NewSize, err)
		}
		if *p.NewSize == cp.size && newRoot != cp.root {
			fail("%s: new root at size %d is not the checkpoint's", f, cp.size)
		}
		if *p.OldSize == cp.size && oldRoot != cp.root {
			fail("%s: old root at size %d is not the checkpoint's", f, cp.size)
		}
	}

	fmt.Printf("ok: checkpoint %s size %d signed by %s; %d inclusion, %d consistency\n",
		cp.origin, cp.size, verifier.Name(), len(inclusions), len(consistencies))
}
