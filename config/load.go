package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// MaxFileSize is the largest config file Load reads (ztick's limit).
const MaxFileSize = 1 << 20

// Load reads the TOML file at path on top of Default() and validates the
// result. Every problem is collected into one *Error, one per line with the
// file, line and key: syntax errors, unknown sections and keys, values of
// the wrong type, and everything Validate rejects. On error the returned
// Config holds what could be decoded and must not be used.
//
// ztick's keys are accepted with ztick's meaning: `fsync_on_persist = false`
// means `fsync = "never"` (true keeps `fsync`, default "always"), and the
// `[telemetry]` keys are checked and ignored. `database.logfile_path` is an
// error: tock's logfiles live under `database.data_dir`.
//
// Load does not run CheckShellPath, and flags applied afterwards need
// another Validate.
func Load(path string) (Config, error) {
	data, err := readFile(path)
	if err != nil {
		return Default(), err
	}
	return parse(path, data)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close() // read-only: a close error loses nothing
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("read config %s: larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}

// parse decodes data (the contents of path) on top of Default().
func parse(path string, data []byte) (Config, error) {
	cfg := Default()
	d := decoder{lines: scanKeyLines(string(data))}
	if ok := d.decode(string(data), &cfg); ok {
		d.applyFsyncOnPersist(&cfg)
		for _, p := range cfg.problems() {
			p.Line = d.lines.line(strings.Split(p.Key, "."))
			d.ps = append(d.ps, p)
		}
	}
	if len(d.ps) > 0 {
		return cfg, &Error{Path: path, Problems: d.ps}
	}
	return cfg, nil
}

type decoder struct {
	md    toml.MetaData
	lines keyLines
	ps    problems
}

func (d *decoder) problem(key toml.Key, msg string) {
	d.ps = append(d.ps, Problem{Key: key.String(), Line: d.lines.line(key), Msg: msg})
}

// decode fills cfg from text one key at a time, so that every bad key is
// reported, not just the first. It reports false on a syntax error.
func (d *decoder) decode(text string, cfg *Config) bool {
	var top map[string]toml.Primitive
	md, err := toml.Decode(text, &top)
	if err != nil {
		d.syntaxError(err)
		return false
	}
	d.md = md
	sections := tagged(reflect.ValueOf(cfg).Elem())
	tables := map[string]map[string]toml.Primitive{}
	// Keys lists what the text defines, in order; parents that are only
	// implied (`[log.extra]`, `log.level = ...`) are not listed, so each
	// key's section and section.key are handled when first met.
	seen := map[string]bool{}
	for _, key := range md.Keys() {
		for n := 1; n <= min(2, len(key)); n++ {
			k := key[:n]
			if seen[lineKey(k)] {
				continue
			}
			seen[lineKey(k)] = true
			if n == 1 {
				d.section(k, top[k[0]], sections, tables)
			} else if keys, ok := tables[k[0]]; ok {
				d.key(k, keys[k[1]], sections[k[0]])
			}
		}
	}
	return true
}

func (d *decoder) syntaxError(err error) {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		d.ps = append(d.ps, Problem{Line: pe.Position.Line, Msg: "syntax error: " + pe.Message})
		return
	}
	d.ps = append(d.ps, Problem{Msg: "syntax error: " + err.Error()})
}

// section checks a top-level key, which must be one of Config's sections.
func (d *decoder) section(key toml.Key, prim toml.Primitive, sections map[string]reflect.Value, tables map[string]map[string]toml.Primitive) {
	// Type is "" for a table that is only implied by a longer key.
	typ := d.md.Type(key...)
	isTable := typ == "Hash" || typ == ""
	if _, known := sections[key[0]]; !known {
		if isTable {
			d.problem(key, "unknown section")
		} else {
			d.problem(key, "unknown key (keys belong in a [section])")
		}
		return
	}
	if !isTable {
		d.problem(key, "must be a table, as in ["+key[0]+"]")
		return
	}
	var keys map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &keys); err != nil {
		d.problem(key, cleanError(err))
		return
	}
	tables[key[0]] = keys
}

// key decodes one section.key into its field of section.
func (d *decoder) key(key toml.Key, prim toml.Primitive, section reflect.Value) {
	if key[0] == "database" && key[1] == "logfile_path" {
		d.problem(key, "not supported: tock keeps its logfiles under database.data_dir (one per shard); set database.data_dir instead")
		return
	}
	field, ok := tagged(section)[key[1]]
	if !ok {
		d.problem(key, "unknown key")
		return
	}
	if err := d.md.PrimitiveDecode(prim, field.Addr().Interface()); err != nil {
		d.problem(key, cleanError(err))
	}
}

// applyFsyncOnPersist maps ztick's fsync_on_persist onto fsync.
func (d *decoder) applyFsyncOnPersist(cfg *Config) {
	v := cfg.Database.FsyncOnPersist
	if v == nil || *v {
		return
	}
	if d.md.IsDefined("database", "fsync") && cfg.Database.Fsync != FsyncNever {
		d.problem(toml.Key{"database", "fsync_on_persist"},
			fmt.Sprintf("false means database.fsync = %q, which conflicts with database.fsync = %q", FsyncNever, cfg.Database.Fsync))
		return
	}
	cfg.Database.Fsync = FsyncNever
}

// tagged maps the toml tags of struct v's fields to the fields.
func tagged(v reflect.Value) map[string]reflect.Value {
	t := v.Type()
	m := make(map[string]reflect.Value, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name != "" && name != "-" && t.Field(i).IsExported() {
			m[name] = v.Field(i)
		}
	}
	return m
}

// cleanError strips BurntSushi/toml's "toml: line N (last key ...): "
// prefix; the Problem carries key and line.
func cleanError(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return pe.Message
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "toml: "); ok {
		msg = rest
		if i := strings.Index(msg, "): "); i >= 0 && strings.Contains(msg[:i], "last key") {
			msg = msg[i+3:]
		}
	}
	return msg
}
