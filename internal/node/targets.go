package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/roostmq/roost/internal/backup/target"
	"github.com/roostmq/roost/internal/config"
)

// S3Config turns the backup.s3.* keys into the target package's settings
// (credentials fall back to the AWS_* environment there).
func S3Config(c config.BackupS3Config) target.S3Config {
	return target.S3Config{Endpoint: c.Endpoint, Region: c.Region, AccessKeyID: c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey, SecretAccessKeyFile: c.SecretAccessKeyFile, PathStyle: c.PathStyle, CAFile: c.CAFile}
}

// Targets resolves target specs (a directory path, s3://bucket/prefix)
// with the node's S3 settings.
func Targets(cfg *config.Config) func(spec string) (target.Target, error) {
	s3 := S3Config(cfg.Backup.S3)
	return func(spec string) (target.Target, error) { return target.New(spec, s3) }
}

// defaultTarget is backup.target: nil (the backup dir) when unset.
func defaultTarget(cfg *config.Config) (target.Target, error) {
	if cfg.Backup.Target == "" {
		return nil, nil
	}
	t, err := Targets(cfg)(cfg.Backup.Target)
	if err != nil {
		return nil, fmt.Errorf("backup.target: %w", err)
	}
	return t, nil
}

// seedHealthTimeout bounds the listing of a remote backup.target at
// start, for the last backup and export there.
const seedHealthTimeout = 30 * time.Second

// seedHealth finds the newest backup and export at the default target
// (the health records of the previous run: see backup.Health.Seed): in
// the backup dir at once, at a remote target in the background, so that
// a slow or unreachable bucket does not hold up the start.
func seedHealth(ctx context.Context, def target.Target, log *slog.Logger, seeds ...func(context.Context)) {
	run := func(ctx context.Context) {
		for _, seed := range seeds {
			seed(ctx)
		}
	}
	if def == nil {
		run(ctx)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(ctx, seedHealthTimeout)
		defer cancel()
		run(ctx)
		if ctx.Err() == context.DeadlineExceeded {
			log.Warn("the last backup and export at backup.target are not known: listing it took too long", "target", def.String())
		}
	}()
}
