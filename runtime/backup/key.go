package backup

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// WrappedKey is an archive's data key encrypted by a master key. Alg names the
// wrapper, so a KMS wrapper (Alg "gcp-kms", KeyID the key version) can sit
// beside the local one without changing the format.
type WrappedKey struct {
	Alg     string `json:"alg"`
	KeyID   string `json:"keyId"`
	Nonce   []byte `json:"nonce"`
	Wrapped []byte `json:"wrapped"`
}

// KeyWrapper wraps and unwraps data keys (envelope encryption).
type KeyWrapper interface {
	Wrap(dataKey, aad []byte) (WrappedKey, error)
	Unwrap(k WrappedKey, aad []byte) ([]byte, error)
}

// LocalKey is a 32-byte master key held by the process; it wraps with AES-256-GCM.
type LocalKey struct{ key []byte }

// NewLocalKey checks the key's length.
func NewLocalKey(key []byte) (*LocalKey, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("backup key: %d bytes, want 32 (generate one with: head -c 32 /dev/urandom | base64)", len(key))
	}
	return &LocalKey{key: append([]byte(nil), key...)}, nil
}

// ID names the key without revealing it: the first 8 bytes of its SHA-256, in hex.
func (k *LocalKey) ID() string {
	s := sha256.Sum256(append([]byte("omsbak key id v1"), k.key...))
	return hex.EncodeToString(s[:8])
}

const localAlg = "AES-256-GCM"

// Wrap implements KeyWrapper.
func (k *LocalKey) Wrap(dataKey, aad []byte) (WrappedKey, error) {
	aead, err := newGCM(k.key)
	if err != nil {
		return WrappedKey{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return WrappedKey{}, err
	}
	return WrappedKey{Alg: localAlg, KeyID: k.ID(), Nonce: nonce, Wrapped: aead.Seal(nil, nonce, dataKey, aad)}, nil
}

// Unwrap implements KeyWrapper; a different master key fails with ErrWrongKey.
func (k *LocalKey) Unwrap(w WrappedKey, aad []byte) ([]byte, error) {
	if w.Alg != localAlg {
		return nil, fmt.Errorf("%w: the archive's key is wrapped with %q, this build unwraps %q", ErrWrongKey, w.Alg, localAlg)
	}
	if w.KeyID != k.ID() {
		return nil, fmt.Errorf("%w: the archive was encrypted with key %s, the given key is %s", ErrWrongKey, w.KeyID, k.ID())
	}
	aead, err := newGCM(k.key)
	if err != nil {
		return nil, err
	}
	if len(w.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("%w: wrapped key nonce", ErrCorrupt)
	}
	dk, err := aead.Open(nil, w.Nonce, w.Wrapped, aad)
	if err != nil || len(dk) != 32 {
		return nil, fmt.Errorf("%w: the wrapped data key fails authentication", ErrCorrupt)
	}
	return dk, nil
}

// LoadKey reads the master key: base64 in file (when given), else base64 in
// env. The key is never a flag value, which would show in `ps`.
func LoadKey(file, env string) (*LocalKey, error) {
	var raw, from string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--key-file/OMS_BACKUP_KEY_FILE: %w", err)
		}
		raw, from = string(b), "--key-file/OMS_BACKUP_KEY_FILE "+file
	case env != "":
		raw, from = env, "OMS_BACKUP_KEY"
	default:
		return nil, fmt.Errorf("no backup key: set --key-file/OMS_BACKUP_KEY_FILE to a file holding 32 bytes in base64, or OMS_BACKUP_KEY")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: not base64 (generate a key with: head -c 32 /dev/urandom | base64)", from)
	}
	k, err := NewLocalKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return k, nil
}
