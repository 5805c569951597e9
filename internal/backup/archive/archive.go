// Package archive is the on-disk format of a roost node backup: a physical
// copy of one node's data directory (and the config files beside it), taken
// while the node runs and restored onto an empty directory.
//
// A backup file is
//
//	[ age encryption ]( zstd( tar ) )
//
// The tar stream holds regular files only, under clean relative slash paths
// (data/store.db, data/node.json, config/roost.conf, ...), in the order the
// writer added them, and last one entry MANIFEST.json: the [Manifest], which
// names the node, its raft state and the size, mode and sha256 of every other
// file. The manifest comes last so that a writer hashes each file while it
// streams it, with no second pass and no seeking; the price is that a reader
// learns what a backup holds only at its end, so every reader reads (and
// verifies) the whole stream.
//
// zstd is always there (level 3, with its frame checksum). age encryption,
// to X25519 recipients or to a scrypt passphrase, is optional; readers tell
// the two apart by the first bytes: "age-encryption.org/v1" or the zstd magic
// 28 B5 2F FD. A reader checks, in this order, the age authentication of each
// chunk, the zstd checksum, the tar structure (regular files, safe paths, no
// duplicates), and then every file against the manifest.
package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

const (
	// FormatName is the manifest's "format".
	FormatName = "roost-node-backup"
	// FormatVersion is the version this roost writes and the newest it reads.
	FormatVersion = 1
	// ManifestName is the tar entry of the manifest, always the last one.
	ManifestName = "MANIFEST.json"
)

// FileEntry describes one file of a backup in its manifest.
type FileEntry struct {
	Path   string `json:"path"`   // relative slash path, e.g. data/store.db
	Size   int64  `json:"size"`   // bytes
	Mode   uint32 `json:"mode"`   // permission bits (0o600 is 384)
	SHA256 string `json:"sha256"` // lowercase hex
}

// RaftServer is one server of the raft configuration.
type RaftServer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
}

// RaftState is the raft position of the backed-up store.
type RaftState struct {
	// Index and Term are those of the store snapshot (its last applied entry).
	Index              uint64       `json:"index"`
	Term               uint64       `json:"term"`
	ConfigurationIndex uint64       `json:"configuration_index"`
	Servers            []RaftServer `json:"servers"`
	CurrentTerm        uint64       `json:"current_term"`
	LastVoteTerm       uint64       `json:"last_vote_term"`
	LastVoteCand       string       `json:"last_vote_candidate"`
}

// Manifest is MANIFEST.json, the last entry of a backup.
type Manifest struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	Node          string    `json:"node"`
	NodeID        string    `json:"node_id"`
	ClusterID     string    `json:"cluster_id"`
	RoostVersion  string    `json:"roost_version"`
	CreatedAt     time.Time `json:"created_at"`
	Raft          RaftState `json:"raft"`
	// Tables counts the rows of each store table at Raft.Index.
	Tables map[string]int `json:"tables"`
	// ConfigDir is where the config/ files came from on the source node.
	ConfigDir string      `json:"config_dir,omitempty"`
	Files     []FileEntry `json:"files"`
}

// Errors a reader returns; test them with errors.Is. The errors returned
// carry more detail in their text but still match these.
var (
	ErrEncrypted  = errors.New("backup is encrypted: give --identity FILE or --passphrase-file FILE")
	ErrWrongKey   = errors.New("cannot decrypt backup: wrong key or passphrase")
	ErrTruncated  = errors.New("backup is truncated")
	ErrNoManifest = errors.New("backup has no " + ManifestName)
	// ErrCorrupt is damage that is not a plain truncation: a zstd checksum
	// or age authentication failure, a broken tar header, a bad manifest.
	ErrCorrupt = errors.New("backup is corrupt")
	// ErrNotBackup is a file that is neither zstd nor age, or whose
	// manifest names another format.
	ErrNotBackup = errors.New("not a roost node backup")
	// ErrUnsupportedVersion is a backup written by a newer roost.
	ErrUnsupportedVersion = errors.New("backup format version not supported")
)

// FileError is a problem with one file of a backup: an unsafe path, a
// non-regular entry, a duplicate, or a disagreement with the manifest.
type FileError struct {
	Path    string
	Problem string
}

func (e *FileError) Error() string {
	return "backup file " + displayPath(e.Path) + ": " + e.Problem
}

// kindError has its own text and still matches a sentinel (its kind) with
// errors.Is, so messages can say what happened where without losing type.
type kindError struct {
	kind error
	msg  string
	err  error // the underlying cause, if any
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }
func (e *kindError) Unwrap() error        { return e.err }

// kindf makes a kindError reading "<kind>: <detail>".
func kindf(kind, cause error, format string, args ...any) error {
	return &kindError{kind: kind, msg: kind.Error() + ": " + fmt.Sprintf(format, args...), err: cause}
}

// displayPath quotes a path only when printing it bare would mislead
// (empty, control characters, invalid UTF-8).
func displayPath(p string) string {
	if q := strconv.Quote(p); p == "" || q[1:len(q)-1] != p {
		return q
	}
	return p
}

// pathProblem says why name cannot be the path of a file in a backup, or ""
// when it can. The same rule guards the writer and the reader, so Extract
// never writes outside its directory whatever the archive says.
func pathProblem(name string) string {
	switch {
	case name == "":
		return "empty path"
	case strings.HasPrefix(name, "/"):
		return "absolute path"
	case strings.ContainsRune(name, '\\'):
		return "backslash in path"
	case strings.ContainsRune(name, 0):
		return "NUL in path"
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return `path contains ".."`
		}
	}
	if !fs.ValidPath(name) || name == "." {
		return "not a clean relative path"
	}
	return ""
}

// parentDirs calls fn for each directory above name: "a" and "a/b" for "a/b/c".
func parentDirs(name string, fn func(dir string)) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			fn(name[:i])
		}
	}
}
