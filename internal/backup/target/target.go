// Package target is where backups and exports are kept: a directory
// (the node's <data_dir>/backup, or an NFS mount) or an S3-compatible
// bucket. Every target writes an object so that it appears under its
// name only once it is complete (a directory: temp file, fsync, link; S3:
// multipart upload, completed last), and streams it: no whole copy is
// held in memory or spooled to disk.
package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// Object is one complete object (file) of a target.
type Object struct {
	Name       string    `json:"name"`
	Size       int64     `json:"size"`
	ModifiedAt time.Time `json:"modified_at"`
}

// Errors callers tell apart.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Target keeps named objects. Names are single path elements; a name
// that starts with "." is never listed (targets write their unfinished
// objects under such names, or not at all).
type Target interface {
	// String names the target for messages and status: a directory's
	// path or s3://bucket/prefix. It never holds a credential.
	String() string
	// Put stores what write writes as name. The object appears under
	// name only when write returned nil and every byte is stored; on any
	// failure nothing is left under name. An existing name is refused
	// (ErrExists).
	Put(ctx context.Context, name string, write func(w io.Writer) error) (Object, error)
	// Open streams an object.
	Open(ctx context.Context, name string) (io.ReadCloser, Object, error)
	Stat(ctx context.Context, name string) (Object, error)
	// List returns the complete objects directly under the target, by
	// name.
	List(ctx context.Context) ([]Object, error)
	Delete(ctx context.Context, name string) error
}

// Error is a failure of a target operation. It names the target and, for
// S3, carries the service's error code (InvalidAccessKeyId, NoSuchBucket…).
type Error struct {
	Target string // String() of the target
	Op     string // put, open, list, delete, stat
	Name   string // the object, if any
	Code   string // S3 error code, if any
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Target)
	b.WriteString(": ")
	b.WriteString(e.Op)
	if e.Name != "" {
		b.WriteString(" " + e.Name)
	}
	b.WriteString(": ")
	if e.Code != "" && !strings.Contains(e.Err.Error(), e.Code) {
		b.WriteString(e.Code + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// checkName refuses what is not a plain object name.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("object name %q: a name is required", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("object name %q: must be a single name, without a path", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("object name %q: must not start with '.'", name)
	}
	return nil
}

// IsURL reports whether spec names a remote target (s3://…) rather than a
// directory.
func IsURL(spec string) bool { return strings.HasPrefix(spec, "s3://") }

// New returns the target that spec names: "s3://bucket/prefix" (with
// the S3 settings of s3), or an absolute directory path.
func New(spec string, s3 S3Config) (Target, error) {
	switch {
	case strings.HasPrefix(spec, "s3://"):
		bucket, prefix, err := parseS3URL(spec)
		if err != nil {
			return nil, err
		}
		return NewS3(bucket, prefix, s3)
	case strings.Contains(spec, "://"):
		return nil, fmt.Errorf("target %q: only s3:// URLs and directory paths are targets", spec)
	case spec == "":
		return nil, errors.New("target: empty (give a directory path or s3://bucket/prefix)")
	case !filepath.IsAbs(spec):
		return nil, fmt.Errorf("target %q: a directory target must be an absolute path", spec)
	}
	return NewDir(spec), nil
}

// SplitObject splits the URL or path of one object into its target and
// name: s3://bucket/prefix/name → (s3://bucket/prefix, name);
// /dir/name → (/dir, name).
func SplitObject(url string) (spec, name string, err error) {
	i := strings.LastIndex(url, "/")
	if i < 0 || i == len(url)-1 {
		return "", "", fmt.Errorf("%q does not name an object (want s3://bucket/[prefix/]name or /dir/name)", url)
	}
	spec, name = url[:i], url[i+1:]
	if strings.HasPrefix(url, "s3://") && !strings.Contains(strings.TrimPrefix(url, "s3://"), "/") {
		return "", "", fmt.Errorf("%q names a bucket, not an object (want s3://bucket/[prefix/]name)", url)
	}
	if spec == "" {
		spec = "/"
	}
	return spec, name, checkName(name)
}

// parseS3URL splits s3://bucket/prefix; the prefix has no leading or
// trailing slash.
func parseS3URL(u string) (bucket, prefix string, err error) {
	rest := strings.TrimPrefix(u, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("target %q: no bucket (want s3://bucket/prefix)", u)
	}
	if strings.Contains("/"+prefix, "//") {
		return "", "", fmt.Errorf("target %q: empty path element in the prefix", u)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	// A file-backed service (versitygw, MinIO) may resolve them as paths.
	for _, el := range strings.Split(prefix, "/") {
		if el == "." || el == ".." {
			return "", "", fmt.Errorf("target %q: path element %q in the prefix", u, el)
		}
	}
	return bucket, prefix, nil
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
