package config

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	IdentityFile          = "node.json" // <data_dir>/node.json
	IdentityFormatVersion = 1           // newest node.json format this build reads and writes
	CookieFile            = "cookie"    // <data_dir>/cookie
)

// Identity is who a node is. It lives in <data_dir>/node.json and outlives
// config changes: raft and cluster membership know the node by it, and a
// physical backup is checked against it on restore.
type Identity struct {
	FormatVersion int       `json:"format_version"`
	Name          string    `json:"name"`
	NodeID        string    `json:"node_id"`    // random 128-bit, hex
	ClusterID     string    `json:"cluster_id"` // random 128-bit, hex; replaced on cluster join or --force-new-cluster
	CreatedAt     time.Time `json:"created_at"`
}

// NameMismatchError says the data dir belongs to a node of another name.
type NameMismatchError struct {
	DataDir    string
	Stored     string // name in node.json
	Configured string // node.name
}

func (e *NameMismatchError) Error() string {
	return fmt.Sprintf("data dir %s belongs to node %q, but node.name is %q: a node's name is part of its identity "+
		"(raft and cluster membership know it by that name). Set node.name = %q (or ROOST_NODE__NAME) to run that node, "+
		"or use a fresh data dir (node.data_dir) to start a new node named %q",
		e.DataDir, e.Stored, e.Configured, e.Stored, e.Configured)
}

// NewID returns a random 128-bit id in hex.
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// NewIdentity makes the identity of a brand-new node in a new cluster.
func NewIdentity(name string) (Identity, error) {
	nodeID, err := NewID()
	if err != nil {
		return Identity{}, err
	}
	clusterID, err := NewID()
	if err != nil {
		return Identity{}, err
	}
	return Identity{
		FormatVersion: IdentityFormatVersion,
		Name:          name,
		NodeID:        nodeID,
		ClusterID:     clusterID,
		CreatedAt:     time.Now().UTC().Truncate(time.Second),
	}, nil
}

// ReadIdentity reads <data_dir>/node.json. A missing file is an error that
// matches fs.ErrNotExist.
func ReadIdentity(dataDir string) (Identity, error) {
	path := filepath.Join(dataDir, IdentityFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("node identity: %w", err)
	}
	return parseIdentity(path, data)
}

func parseIdentity(path string, data []byte) (Identity, error) {
	// Check the version before the rest, so a newer format is named as such
	// rather than failing on a field this build doesn't know.
	var v struct {
		FormatVersion int `json:"format_version"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return Identity{}, fmt.Errorf("%s: not a node identity file: %v", path, err)
	}
	if v.FormatVersion > IdentityFormatVersion {
		return Identity{}, fmt.Errorf("%s: format_version %d is newer than this roost supports (%d); run a newer roost",
			path, v.FormatVersion, IdentityFormatVersion)
	}
	var id Identity
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&id); err != nil {
		return Identity{}, fmt.Errorf("%s: not a node identity file: %v", path, err)
	}
	if err := id.check(); err != nil {
		return Identity{}, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

func (id Identity) check() error {
	var missing []string
	if id.FormatVersion < 1 {
		missing = append(missing, "format_version")
	}
	if id.Name == "" {
		missing = append(missing, "name")
	}
	if id.NodeID == "" {
		missing = append(missing, "node_id")
	}
	if id.ClusterID == "" {
		missing = append(missing, "cluster_id")
	}
	if len(missing) > 0 {
		return fmt.Errorf("node identity lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// WriteIdentity replaces <data_dir>/node.json atomically (mode 0600). A
// zero FormatVersion is written as the current one.
func WriteIdentity(dataDir string, id Identity) error {
	if id.FormatVersion == 0 {
		id.FormatVersion = IdentityFormatVersion
	}
	if err := id.check(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	return writeFileAtomic(filepath.Join(dataDir, IdentityFile), append(data, '\n'), 0o600)
}

// LoadOrCreateIdentity returns the node's identity, creating it (and the
// data dir) on first start. A node.name that differs from the stored one is
// a *NameMismatchError: the data dir belongs to another node.
func LoadOrCreateIdentity(dataDir, name string) (id Identity, created bool, err error) {
	id, err = ReadIdentity(dataDir)
	switch {
	case err == nil:
		if id.Name != name {
			return Identity{}, false, &NameMismatchError{DataDir: dataDir, Stored: id.Name, Configured: name}
		}
		return id, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return Identity{}, false, err
	}
	if name == "" {
		return Identity{}, false, errors.New("node identity: node.name is empty")
	}
	if id, err = NewIdentity(name); err != nil {
		return Identity{}, false, err
	}
	if err := WriteIdentity(dataDir, id); err != nil {
		return Identity{}, false, err
	}
	return id, true, nil
}

// Identity loads or creates the node's identity in the data dir. When
// node.name was not configured, the stored name wins over the hostname
// default: a container's hostname changes on every re-create, its data
// volume (and so its identity) does not.
func (l *Loaded) Identity() (Identity, bool, error) {
	if !l.NodeNameSet {
		id, err := ReadIdentity(l.DataDir)
		if err == nil {
			l.Config.Node.Name = id.Name
			return id, false, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return Identity{}, false, err
		}
	}
	return LoadOrCreateIdentity(l.DataDir, l.Config.Node.Name)
}

// EnsureCookie returns the cluster secret: node.cookie when configured,
// else the one kept in <data_dir>/cookie, created on first use (32 random
// bytes, base64url, mode 0600).
func EnsureCookie(dataDir, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dataDir, CookieFile)
	data, err := os.ReadFile(path)
	if err == nil {
		c := strings.TrimSpace(string(data))
		if c == "" {
			return "", fmt.Errorf("cookie file %s is empty; set node.cookie, or delete the file to generate a new secret "+
				"(every node of a cluster needs the same one)", path)
		}
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("cookie: %w", err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cookie: %w", err)
	}
	c := base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if err := writeFileAtomic(path, []byte(c+"\n"), 0o600); err != nil {
		return "", err
	}
	return c, nil
}

// writeFileAtomic writes data to path so that a crash leaves either the old
// file or the new one, never a torn one: temp file, fsync, rename, fsync dir.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err = f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
