package config

import (
	"reflect"
	"strings"
)

// Keys lists every key of the configuration as "section.key", in the order
// of the Config struct: the list docs/configuration.md and
// tock.toml.example are checked against.
func Keys() []string {
	var keys []string
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sf := ct.Field(i)
		section := tomlName(sf)
		st := sf.Type
		for j := range st.NumField() {
			keys = append(keys, section+"."+tomlName(st.Field(j)))
		}
	}
	return keys
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}
