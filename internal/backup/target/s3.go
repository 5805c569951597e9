package target

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says how to reach an S3-compatible service. Secrets are
// never part of a message or a status.
type S3Config struct {
	// Endpoint is https://host[:port] or http://host[:port]; a bare
	// host[:port] means https. Default: https://s3.amazonaws.com.
	Endpoint string
	// Region of the bucket; "" asks the service (one request more).
	Region string
	// AccessKeyID and SecretAccessKey (or the first line of
	// SecretAccessKeyFile); unset, $AWS_ACCESS_KEY_ID and
	// $AWS_SECRET_ACCESS_KEY (and $AWS_SESSION_TOKEN).
	AccessKeyID         string
	SecretAccessKey     string
	SecretAccessKeyFile string
	// PathStyle addresses buckets as endpoint/bucket (most self-hosted
	// services need it); false: virtual-host style where the service
	// supports it (AWS), path style elsewhere.
	PathStyle bool
	// CAFile verifies the endpoint's certificate against this PEM
	// bundle instead of the system's roots.
	CAFile string
	// Getenv reads the fallback environment; nil: os.Getenv.
	Getenv func(string) string
}

// DefaultS3Endpoint is AWS's.
const DefaultS3Endpoint = "https://s3.amazonaws.com"

// PartSize is the size of one part of a multipart upload: the memory an
// upload holds (one part at a time), and a 160 GB bound on an object
// (S3 allows 10,000 parts).
const PartSize = 16 << 20

// S3 is a bucket (and prefix) of an S3-compatible service. Objects are
// written by multipart upload: the service shows an object only once the
// upload is completed, which is the last step, after every byte is
// stored; a failed upload is aborted.
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string // no leading or trailing slash
	endpoint string // for messages
}

// NewS3 returns the target s3://bucket/prefix of the service cfg names.
func NewS3(bucket, prefix string, cfg S3Config) (*S3, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	name := "s3://" + bucket
	if prefix != "" {
		name += "/" + prefix
	}
	ep := cfg.Endpoint
	if ep == "" {
		ep = DefaultS3Endpoint
	}
	if !strings.Contains(ep, "://") {
		ep = "https://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("target %s: backup.s3.endpoint %q: want https://host[:port] or http://host[:port]", name, cfg.Endpoint)
	}
	id, secret, token := cfg.AccessKeyID, cfg.SecretAccessKey, ""
	if secret == "" && cfg.SecretAccessKeyFile != "" {
		b, err := os.ReadFile(cfg.SecretAccessKeyFile)
		if err != nil {
			return nil, fmt.Errorf("target %s: backup.s3.secret_access_key_file: %w", name, err)
		}
		secret, _, _ = strings.Cut(string(b), "\n")
		secret = strings.TrimSpace(secret)
		if secret == "" {
			return nil, fmt.Errorf("target %s: backup.s3.secret_access_key_file %s: the first line is empty", name, cfg.SecretAccessKeyFile)
		}
	}
	if id == "" && secret == "" {
		id, secret, token = getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")
	}
	if id == "" || secret == "" {
		return nil, fmt.Errorf("target %s: no S3 credentials: set backup.s3.access_key_id and backup.s3.secret_access_key "+
			"(or backup.s3.secret_access_key_file), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", name)
	}
	tr, err := minio.DefaultTransport(u.Scheme == "https")
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("target %s: backup.s3.ca_file: %w", name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("target %s: backup.s3.ca_file %s: no PEM certificate in it", name, cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds: credentials.NewStaticV4(id, secret, token), Secure: u.Scheme == "https", Region: cfg.Region,
		BucketLookup: lookup, Transport: http.RoundTripper(tr),
		// A dead service fails an upload in seconds rather than after
		// the library's default ten tries.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	return &S3{client: client, bucket: bucket, prefix: prefix, endpoint: u.Scheme + "://" + u.Host}, nil
}

func (s *S3) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

func (s *S3) key(name string) string {
	if s.prefix == "" {
		return name
	}
	return s.prefix + "/" + name
}

// fail wraps an error of the service with the target, the endpoint and
// the S3 error code.
func (s *S3) fail(op, name string, err error) error {
	var te *Error
	if errors.As(err, &te) {
		return err
	}
	code := minio.ToErrorResponse(err).Code
	switch code {
	case "NoSuchKey", "NotFound":
		err = fmt.Errorf("%w (%s)", ErrNotFound, code)
	}
	return &Error{Target: s.String() + " (endpoint " + s.endpoint + ")", Op: op, Name: name, Code: code, Err: err}
}

func (s *S3) Put(ctx context.Context, name string, write func(io.Writer) error) (Object, error) {
	if err := checkName(name); err != nil {
		return Object{}, s.fail("put", "", err)
	}
	// A HEAD answer carries no S3 error code: on any error but "it
	// exists", the upload itself says what is wrong.
	if _, err := s.Stat(ctx, name); err == nil {
		return Object{}, s.fail("put", name, ErrExists)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	cw := &countingWriter{w: pw}
	werr := make(chan error, 1)
	go func() {
		err := write(cw)
		// An error, not EOF, reaches the upload: it aborts instead of
		// completing a short object.
		pw.CloseWithError(err)
		werr <- err
	}()
	info, perr := s.client.PutObject(ctx, s.bucket, s.key(name), pr, -1, minio.PutObjectOptions{
		PartSize: PartSize, ContentType: "application/octet-stream"})
	pr.CloseWithError(errUploadStopped) // the writer stops too, if the upload did first
	err := <-werr
	switch {
	case err != nil && errors.Is(perr, err):
		return Object{}, err // the writer failed first: the upload read its error and aborted
	case perr != nil:
		return Object{}, s.fail("put", name, perr)
	case err != nil:
		return Object{}, err
	case info.Size != cw.n:
		return Object{}, s.fail("put", name, fmt.Errorf("the service stored %d bytes of %d", info.Size, cw.n))
	}
	mod := info.LastModified
	if mod.IsZero() {
		mod = time.Now()
	}
	return Object{Name: name, Size: info.Size, ModifiedAt: mod.UTC()}, nil
}

var errUploadStopped = errors.New("the upload stopped")

func (s *S3) Open(ctx context.Context, name string) (io.ReadCloser, Object, error) {
	if err := checkName(name); err != nil {
		return nil, Object{}, s.fail("open", "", err)
	}
	o, err := s.client.GetObject(ctx, s.bucket, s.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, Object{}, s.fail("open", name, err)
	}
	st, err := o.Stat()
	if err != nil {
		o.Close()
		return nil, Object{}, s.fail("open", name, err)
	}
	return &s3Reader{o: o, s: s, name: name}, Object{Name: name, Size: st.Size, ModifiedAt: st.LastModified.UTC()}, nil
}

// s3Reader names the target in read errors.
type s3Reader struct {
	o    *minio.Object
	s    *S3
	name string
}

func (r *s3Reader) Read(p []byte) (int, error) {
	n, err := r.o.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.fail("read", r.name, err)
	}
	return n, err
}

func (r *s3Reader) Close() error { return r.o.Close() }

func (s *S3) Stat(ctx context.Context, name string) (Object, error) {
	if err := checkName(name); err != nil {
		return Object{}, s.fail("stat", "", err)
	}
	st, err := s.client.StatObject(ctx, s.bucket, s.key(name), minio.StatObjectOptions{})
	if err != nil {
		return Object{}, s.fail("stat", name, err)
	}
	return Object{Name: name, Size: st.Size, ModifiedAt: st.LastModified.UTC()}, nil
}

func (s *S3) listPrefix() string {
	if s.prefix == "" {
		return ""
	}
	return s.prefix + "/"
}

func (s *S3) List(ctx context.Context) ([]Object, error) {
	out := []Object{}
	p := s.listPrefix()
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: p}) {
		if o.Err != nil {
			return nil, s.fail("list", "", o.Err)
		}
		name := strings.TrimPrefix(o.Key, p)
		if name == "" || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
			continue // "directories" and what is not ours
		}
		out = append(out, Object{Name: name, Size: o.Size, ModifiedAt: o.LastModified.UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *S3) Delete(ctx context.Context, name string) error {
	if _, err := s.Stat(ctx, name); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{}); err != nil {
		return s.fail("delete", name, err)
	}
	return nil
}

// AbortIncomplete aborts the unfinished multipart uploads of the names
// that own selects, begun before the cutoff: parts left by an upload
// that was cut off (the node or the service died) and whose abort never
// reached the service. They are never listed as objects, but the
// service keeps their parts until they are aborted.
func (s *S3) AbortIncomplete(ctx context.Context, own func(name string) bool, before time.Time) ([]string, error) {
	p := s.listPrefix()
	var names []string
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, p, false) {
		if u.Err != nil {
			return names, s.fail("list uploads", "", u.Err)
		}
		name := strings.TrimPrefix(u.Key, p)
		if strings.Contains(name, "/") || !own(name) || !u.Initiated.Before(before) {
			continue
		}
		if err := s.client.RemoveIncompleteUpload(ctx, s.bucket, u.Key); err != nil {
			return names, s.fail("abort upload", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}
