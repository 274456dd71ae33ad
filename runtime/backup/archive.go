// Package backup writes, reads, lists, prunes and restores the runtime's
// encrypted backup archives (see README "Backups" for the format).
//
// An archive is one object:
//
//	header  = "OMSBAK01" | u32 n | header JSON (n bytes)           plaintext; AAD of every chunk
//	body    = chunk* where chunk = u32 len | AES-256-GCM ciphertext  nonce = flag byte | 3 zero | u64 index
//	trailer = manifest JSON | HMAC-SHA256 (32) | u32 len(manifest) | "OMSBAKT1"
//
// The header carries the per-archive data key wrapped by the master key; the
// chunks carry a stream of named entries (the account dumps, the registry, the
// media objects, the manifest last); the trailer repeats the manifest in clear,
// authenticated with a key derived from the data key, so that list and prune
// need no key and restore can check every entry as it streams past.
package backup

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

const (
	headerMagic  = "OMSBAK01"
	trailerMagic = "OMSBAKT1"
	// ChunkSize bounds the memory of writing and reading: one chunk in, one out.
	ChunkSize       = 1 << 20
	maxHeaderSize   = 64 << 10
	maxManifestSize = 64 << 20
	frameSize       = 256 << 10
	manifestEntry   = "manifest.json"
	lastChunkFlag   = 0x01
	trailerFixedLen = sha256.Size + 4 + len(trailerMagic)
)

// ErrCorrupt marks an archive that is damaged, truncated, or not an archive.
var ErrCorrupt = errors.New("backup archive is damaged or not an archive")

// ErrWrongKey marks an archive whose data key the given master key cannot unwrap.
var ErrWrongKey = errors.New("wrong backup key")

// Header is the archive's clear, authenticated preamble.
type Header struct {
	Format    int        `json:"format"`
	ID        string     `json:"id"`
	Tier      string     `json:"tier"`
	Created   time.Time  `json:"created"`
	Release   string     `json:"release"`
	Cipher    string     `json:"cipher"`
	ChunkSize int        `json:"chunkSize"`
	Key       WrappedKey `json:"key"`
}

// Manifest describes an archive's content; it is the last entry of the body and the trailer.
type Manifest struct {
	Format   int            `json:"format"`
	ID       string         `json:"id"`
	Tier     string         `json:"tier"`
	Created  time.Time      `json:"created"`
	Release  string         `json:"release"`
	Accounts []AccountEntry `json:"accounts"`
	Media    *MediaInfo     `json:"media,omitempty"`
	Entries  []Entry        `json:"entries"`
}

// AccountEntry is one account in the archive: its dump entry and the row
// counts per table taken in the dump's own snapshot, which restore re-counts.
type AccountEntry struct {
	ID     string           `json:"id"`
	DBName string           `json:"dbName"`
	Entry  string           `json:"entry"`
	Rows   map[string]int64 `json:"rows"`
}

// MediaInfo records where the media objects came from.
type MediaInfo struct {
	URL     string `json:"url"`
	Objects int    `json:"objects"`
	Bytes   int64  `json:"bytes"`
}

// Entry is one named byte stream of the body.
type Entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Entry returns the manifest's entry called name.
func (m *Manifest) Entry(name string) (Entry, bool) {
	for _, e := range m.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// TotalRows sums the row counts of every account.
func (m *Manifest) TotalRows() int64 {
	var n int64
	for _, a := range m.Accounts {
		for _, c := range a.Rows {
			n += c
		}
	}
	return n
}

func deriveKey(dataKey []byte, label string) []byte {
	h := hmac.New(sha256.New, dataKey)
	h.Write([]byte(label))
	return h.Sum(nil)
}

// Writer streams entries into an encrypted archive.
type Writer struct {
	w         io.Writer
	aead      cipher.AEAD
	aad       []byte
	macKey    []byte
	buf       []byte // plaintext of the chunk being filled
	index     uint64
	manifest  Manifest
	entry     *Entry
	entryHash hash.Hash
	closed    bool
	err       error
}

// NewWriter writes the header to w and returns a Writer for the body. The
// data key is random per archive and wrapped by wrapper.
func NewWriter(w io.Writer, h Header, wrapper KeyWrapper) (*Writer, error) {
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, fmt.Errorf("new data key: %w", err)
	}
	wk, err := wrapper.Wrap(dataKey, []byte(h.ID))
	if err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	h.Format, h.Cipher, h.ChunkSize, h.Key = 1, "AES-256-GCM", ChunkSize, wk
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	var pre bytes.Buffer
	pre.WriteString(headerMagic)
	_ = binary.Write(&pre, binary.BigEndian, uint32(len(hj)))
	pre.Write(hj)
	if _, err := w.Write(pre.Bytes()); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	aead, err := newGCM(deriveKey(dataKey, "omsbak body v1"))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pre.Bytes())
	return &Writer{w: w, aead: aead, aad: sum[:], macKey: deriveKey(dataKey, "omsbak trailer v1"),
		buf:      make([]byte, 0, ChunkSize),
		manifest: Manifest{Format: 1, ID: h.ID, Tier: h.Tier, Created: h.Created, Release: h.Release}}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

func chunkNonce(index uint64, last bool) []byte {
	n := make([]byte, 12)
	if last {
		n[0] = lastChunkFlag
	}
	binary.BigEndian.PutUint64(n[4:], index)
	return n
}

// plain appends bytes to the plaintext stream, sealing full chunks.
func (aw *Writer) plain(p []byte) error {
	if aw.err != nil {
		return aw.err
	}
	for len(p) > 0 {
		n := min(len(p), ChunkSize-len(aw.buf))
		aw.buf = append(aw.buf, p[:n]...)
		p = p[n:]
		if len(aw.buf) == ChunkSize {
			if err := aw.seal(false); err != nil {
				return err
			}
		}
	}
	return nil
}

func (aw *Writer) seal(last bool) error {
	ct := aw.aead.Seal(nil, chunkNonce(aw.index, last), aw.buf, aw.aad)
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(ct)))
	if _, err := aw.w.Write(l[:]); err != nil {
		aw.err = fmt.Errorf("write archive: %w", err)
		return aw.err
	}
	if _, err := aw.w.Write(ct); err != nil {
		aw.err = fmt.Errorf("write archive: %w", err)
		return aw.err
	}
	aw.index++
	aw.buf = aw.buf[:0]
	return nil
}

// Create starts an entry; write its bytes with Write, then call Create again or Close.
func (aw *Writer) Create(name string) error {
	if aw.closed {
		return errors.New("archive closed")
	}
	if name == "" || len(name) > 1024 || name == manifestEntry {
		return fmt.Errorf("entry name %q: 1–1024 bytes, not %s", name, manifestEntry)
	}
	if _, dup := aw.manifest.Entry(name); dup || (aw.entry != nil && aw.entry.Name == name) {
		return fmt.Errorf("entry %q written twice", name)
	}
	return aw.create(name)
}

func (aw *Writer) create(name string) error {
	if err := aw.endEntry(); err != nil {
		return err
	}
	hdr := make([]byte, 3+len(name))
	hdr[0] = 'E'
	binary.BigEndian.PutUint16(hdr[1:], uint16(len(name)))
	copy(hdr[3:], name)
	aw.entry, aw.entryHash = &Entry{Name: name}, sha256.New()
	return aw.plain(hdr)
}

func (aw *Writer) endEntry() error {
	if aw.entry == nil {
		return nil
	}
	if err := aw.plain([]byte{0, 0, 0, 0}); err != nil {
		return err
	}
	aw.entry.SHA256 = hex.EncodeToString(aw.entryHash.Sum(nil))
	aw.manifest.Entries = append(aw.manifest.Entries, *aw.entry)
	aw.entry = nil
	return nil
}

// Write appends p to the current entry.
func (aw *Writer) Write(p []byte) (int, error) {
	if aw.entry == nil {
		return 0, errors.New("write outside an entry: call Create first")
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), frameSize)
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(n))
		if err := aw.plain(l[:]); err != nil {
			return written, err
		}
		if err := aw.plain(p[:n]); err != nil {
			return written, err
		}
		aw.entryHash.Write(p[:n])
		aw.entry.Size += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

// Close completes the archive: the manifest entry (with m's accounts and
// media), the last chunk and the trailer. It returns the final manifest.
func (aw *Writer) Close(accounts []AccountEntry, media *MediaInfo) (*Manifest, error) {
	if aw.closed {
		return nil, errors.New("archive closed twice")
	}
	if err := aw.endEntry(); err != nil {
		return nil, err
	}
	aw.closed = true
	aw.manifest.Accounts, aw.manifest.Media = accounts, media
	if aw.manifest.Accounts == nil {
		aw.manifest.Accounts = []AccountEntry{}
	}
	mj, err := json.Marshal(aw.manifest)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	// The manifest entry is framed like any other but not listed in itself.
	if err := aw.create(manifestEntry); err != nil {
		return nil, err
	}
	if _, err := aw.Write(mj); err != nil {
		return nil, err
	}
	aw.entry = nil
	if err := aw.plain([]byte{0, 0, 0, 0, 'Z'}); err != nil {
		return nil, err
	}
	if err := aw.seal(true); err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, aw.macKey)
	mac.Write(aw.aad)
	mac.Write(mj)
	var tr bytes.Buffer
	tr.Write(mj)
	tr.Write(mac.Sum(nil))
	_ = binary.Write(&tr, binary.BigEndian, uint32(len(mj)))
	tr.WriteString(trailerMagic)
	if _, err := aw.w.Write(tr.Bytes()); err != nil {
		return nil, fmt.Errorf("write trailer: %w", err)
	}
	m := aw.manifest
	return &m, nil
}

// ReadHeader reads and parses the header; raw is its exact bytes (the chunks' AAD).
func ReadHeader(r io.Reader) (h *Header, raw []byte, err error) {
	pre := make([]byte, len(headerMagic)+4)
	if _, err := io.ReadFull(r, pre); err != nil {
		return nil, nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if string(pre[:len(headerMagic)]) != headerMagic {
		return nil, nil, fmt.Errorf("%w: no %s magic", ErrCorrupt, headerMagic)
	}
	n := binary.BigEndian.Uint32(pre[len(headerMagic):])
	if n == 0 || n > maxHeaderSize {
		return nil, nil, fmt.Errorf("%w: header length %d", ErrCorrupt, n)
	}
	hj := make([]byte, n)
	if _, err := io.ReadFull(r, hj); err != nil {
		return nil, nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	h = &Header{}
	if err := json.Unmarshal(hj, h); err != nil {
		return nil, nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if h.Format != 1 || h.Cipher != "AES-256-GCM" || h.ChunkSize != ChunkSize {
		return nil, nil, fmt.Errorf("%w: unsupported format %d / cipher %q / chunk size %d", ErrCorrupt, h.Format, h.Cipher, h.ChunkSize)
	}
	return h, append(pre, hj...), nil
}

// ParseTrailer parses the trailer at the end of tail (the archive's last bytes)
// without authenticating it: list and prune have no key.
func ParseTrailer(tail []byte) (*Manifest, []byte, []byte, error) {
	if len(tail) < trailerFixedLen {
		return nil, nil, nil, fmt.Errorf("%w: trailer too short", ErrCorrupt)
	}
	if string(tail[len(tail)-len(trailerMagic):]) != trailerMagic {
		return nil, nil, nil, fmt.Errorf("%w: no %s magic", ErrCorrupt, trailerMagic)
	}
	n := int(binary.BigEndian.Uint32(tail[len(tail)-len(trailerMagic)-4:]))
	if n > maxManifestSize || n > len(tail)-trailerFixedLen {
		return nil, nil, nil, fmt.Errorf("%w: manifest length %d", ErrCorrupt, n)
	}
	start := len(tail) - trailerFixedLen - n
	mj := tail[start : start+n]
	mac := tail[start+n : start+n+sha256.Size]
	m := &Manifest{}
	if err := json.Unmarshal(mj, m); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	return m, mj, mac, nil
}

// TrailerLen reports the trailer's length from the archive's last 12 bytes.
func TrailerLen(last12 []byte) (int, error) {
	if len(last12) != 4+len(trailerMagic) || string(last12[4:]) != trailerMagic {
		return 0, fmt.Errorf("%w: no %s magic at the end (truncated?)", ErrCorrupt, trailerMagic)
	}
	n := int(binary.BigEndian.Uint32(last12))
	if n > maxManifestSize {
		return 0, fmt.Errorf("%w: manifest length %d", ErrCorrupt, n)
	}
	return n + trailerFixedLen, nil
}

// Reader decrypts an archive's body entry by entry.
type Reader struct {
	Header   *Header
	r        *bufio.Reader
	aead     cipher.AEAD
	aad      []byte
	macKey   []byte
	index    uint64
	plain    []byte // decrypted, not yet consumed
	pbuf     []byte // reused for each chunk's plaintext
	last     bool
	trusted  *Manifest // the authenticated trailer manifest, when known
	entry    *Entry
	hash     hash.Hash
	size     int64
	frameRem int
	seen     []Entry
	manifest []byte
	done     bool
}

// NewReader reads the header from r and unwraps the data key: a wrong key fails here, before any data.
func NewReader(r io.Reader, unwrapper KeyWrapper) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	h, raw, err := ReadHeader(br)
	if err != nil {
		return nil, err
	}
	dataKey, err := unwrapper.Unwrap(h.Key, []byte(h.ID))
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(deriveKey(dataKey, "omsbak body v1"))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &Reader{Header: h, r: br, aead: aead, aad: sum[:], macKey: deriveKey(dataKey, "omsbak trailer v1")}, nil
}

// Authenticate checks a trailer (from ParseTrailer) with the archive's key and
// keeps its manifest: from then on each entry is checked when it ends.
func (ar *Reader) Authenticate(m *Manifest, raw, mac []byte) error {
	h := hmac.New(sha256.New, ar.macKey)
	h.Write(ar.aad)
	h.Write(raw)
	if !hmac.Equal(h.Sum(nil), mac) {
		return fmt.Errorf("%w: the trailer's manifest fails authentication", ErrCorrupt)
	}
	if m.ID != ar.Header.ID || m.Tier != ar.Header.Tier || !m.Created.Equal(ar.Header.Created) {
		return fmt.Errorf("%w: the trailer belongs to another archive", ErrCorrupt)
	}
	ar.trusted = m
	return nil
}

// fill decrypts the next chunk.
func (ar *Reader) fill() error {
	if ar.last {
		return fmt.Errorf("%w: data after the last chunk expected", ErrCorrupt)
	}
	var l [4]byte
	if _, err := io.ReadFull(ar.r, l[:]); err != nil {
		return fmt.Errorf("%w: chunk %d: %v (truncated?)", ErrCorrupt, ar.index, err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n < uint32(ar.aead.Overhead()) || n > ChunkSize+uint32(ar.aead.Overhead()) {
		return fmt.Errorf("%w: chunk %d length %d", ErrCorrupt, ar.index, n)
	}
	ct := make([]byte, n)
	if _, err := io.ReadFull(ar.r, ct); err != nil {
		return fmt.Errorf("%w: chunk %d: %v (truncated?)", ErrCorrupt, ar.index, err)
	}
	// A chunk opens as the last one only if it was sealed as the last one.
	var err error
	for _, last := range []bool{false, true} {
		var pt []byte
		// A failed Open may scribble on dst: decrypt into a buffer, never into ct.
		if pt, err = ar.aead.Open(ar.pbuf[:0], chunkNonce(ar.index, last), ct, ar.aad); err == nil {
			ar.plain, ar.last, ar.pbuf = pt, last, pt
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%w: chunk %d fails authentication", ErrCorrupt, ar.index)
	}
	ar.index++
	return nil
}

func (ar *Reader) readPlain(p []byte) error {
	for len(p) > 0 {
		if len(ar.plain) == 0 {
			if err := ar.fill(); err != nil {
				return err
			}
			continue
		}
		n := copy(p, ar.plain)
		ar.plain, p = ar.plain[n:], p[n:]
	}
	return nil
}

// Next advances to the next entry and returns its name; io.EOF after the
// manifest entry, once the whole archive has been checked.
func (ar *Reader) Next() (string, error) {
	if ar.done {
		return "", io.EOF
	}
	if ar.entry != nil { // skip the rest of the current entry
		if _, err := io.Copy(io.Discard, ar); err != nil {
			return "", err
		}
	}
	var t [1]byte
	if err := ar.readPlain(t[:]); err != nil {
		return "", err
	}
	switch t[0] {
	case 'Z':
		return "", ar.finish()
	case 'E':
	default:
		return "", fmt.Errorf("%w: bad entry marker %#x", ErrCorrupt, t[0])
	}
	var l [2]byte
	if err := ar.readPlain(l[:]); err != nil {
		return "", err
	}
	name := make([]byte, binary.BigEndian.Uint16(l[:]))
	if err := ar.readPlain(name); err != nil {
		return "", err
	}
	if len(name) == 0 {
		return "", fmt.Errorf("%w: empty entry name", ErrCorrupt)
	}
	ar.entry, ar.hash, ar.size, ar.frameRem = &Entry{Name: string(name)}, sha256.New(), 0, 0
	return string(name), nil
}

// Read reads the current entry's bytes; io.EOF at its end, after its checksum matched.
func (ar *Reader) Read(p []byte) (int, error) {
	if ar.entry == nil {
		return 0, io.EOF
	}
	if ar.frameRem == 0 {
		var l [4]byte
		if err := ar.readPlain(l[:]); err != nil {
			return 0, err
		}
		n := binary.BigEndian.Uint32(l[:])
		if n == 0 {
			return 0, ar.endEntry()
		}
		if n > frameSize {
			return 0, fmt.Errorf("%w: frame length %d", ErrCorrupt, n)
		}
		ar.frameRem = int(n)
	}
	p = p[:min(len(p), ar.frameRem)]
	if err := ar.readPlain(p); err != nil {
		return 0, err
	}
	ar.frameRem -= len(p)
	ar.hash.Write(p)
	ar.size += int64(len(p))
	if ar.entry.Name == manifestEntry {
		if len(ar.manifest)+len(p) > maxManifestSize {
			return 0, fmt.Errorf("%w: manifest too large", ErrCorrupt)
		}
		ar.manifest = append(ar.manifest, p...)
	}
	return len(p), nil
}

func (ar *Reader) endEntry() error {
	e := *ar.entry
	e.Size, e.SHA256 = ar.size, hex.EncodeToString(ar.hash.Sum(nil))
	ar.entry = nil
	if e.Name == manifestEntry {
		return io.EOF
	}
	if ar.trusted != nil {
		want, ok := ar.trusted.Entry(e.Name)
		if !ok {
			return fmt.Errorf("%w: entry %s is not in the manifest", ErrCorrupt, e.Name)
		}
		if want != e {
			return fmt.Errorf("%w: entry %s: %d bytes sha256 %s, manifest says %d bytes sha256 %s",
				ErrCorrupt, e.Name, e.Size, e.SHA256, want.Size, want.SHA256)
		}
	}
	ar.seen = append(ar.seen, e)
	return io.EOF
}

// finish checks the end of the body: the last chunk, the manifest entry, and
// that the manifest lists exactly the entries seen.
func (ar *Reader) finish() error {
	if len(ar.plain) != 0 || !ar.last {
		return fmt.Errorf("%w: the body does not end with its last chunk", ErrCorrupt)
	}
	m := &Manifest{}
	if err := json.Unmarshal(ar.manifest, m); err != nil {
		return fmt.Errorf("%w: manifest entry: %v", ErrCorrupt, err)
	}
	if len(m.Entries) != len(ar.seen) {
		return fmt.Errorf("%w: manifest lists %d entries, the body holds %d", ErrCorrupt, len(m.Entries), len(ar.seen))
	}
	for i, e := range ar.seen {
		if m.Entries[i] != e {
			return fmt.Errorf("%w: entry %s does not match the manifest", ErrCorrupt, e.Name)
		}
	}
	if m.ID != ar.Header.ID || m.Tier != ar.Header.Tier || !m.Created.Equal(ar.Header.Created) || m.Release != ar.Header.Release {
		return fmt.Errorf("%w: manifest and header disagree", ErrCorrupt)
	}
	if ar.trusted != nil {
		a, _ := json.Marshal(ar.trusted)
		b, _ := json.Marshal(m)
		if !bytes.Equal(a, b) {
			return fmt.Errorf("%w: the trailer's manifest differs from the body's", ErrCorrupt)
		}
	}
	ar.trusted, ar.done = m, true
	return io.EOF
}

// Manifest is the body's manifest, once Next has returned io.EOF.
func (ar *Reader) Manifest() *Manifest {
	if !ar.done {
		return nil
	}
	return ar.trusted
}
