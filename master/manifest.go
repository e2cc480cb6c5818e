package master

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// manifest records what a data dir was created with.
type manifest struct {
	Format    int       `json:"format"`
	Shards    int       `json:"shards"`
	CreatedAt time.Time `json:"created_at"`
}

const manifestFormat = 1

// checkManifest creates dataDir/MANIFEST on first use and otherwise checks
// that the configured shard count is the one the data dir was made with:
// the shard of a job is fixed by it.
func checkManifest(dataDir string, shards int) error {
	path := filepath.Join(dataDir, "MANIFEST")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		m := manifest{Format: manifestFormat, Shards: shards, CreatedAt: time.Now().UTC()}
		return writeFileSync(path, mustJSON(m))
	}
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("manifest %s is corrupt: %w", path, err)
	}
	if m.Format != manifestFormat {
		return fmt.Errorf("manifest %s has format %d; this tock reads format %d", path, m.Format, manifestFormat)
	}
	if m.Shards != shards {
		return fmt.Errorf("data dir %s was created with %d shards but cluster.shards is %d; the shard count is fixed when the data dir is created (set cluster.shards = %d or use a new data_dir)", dataDir, m.Shards, shards, m.Shards)
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // only called with plain structs
	}
	return append(b, '\n')
}

// writeFileSync writes a small file atomically: temp file, fsync, rename,
// fsync the directory.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
