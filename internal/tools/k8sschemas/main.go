// Command k8sschemas turns Kubernetes' api/openapi-spec/swagger.json into
// the per-kind standalone JSON schemas kubeconform reads from a local
// -schema-location, so manifests can be validated offline.
//
//	k8sschemas -swagger swagger.json -out DIR -kubernetes-version v1.37.2
//
// writes DIR/v1.37.2-standalone-strict/<kind>-<group>-<version>.json (and the
// same without -strict), the layout kubeconform assumes when -schema-location
// is a directory:
//
//	kubeconform -strict -schema-location DIR -kubernetes-version 1.37.2 ...
//
// DIR/master-standalone{,-strict} link to them, so kubeconform's default
// -kubernetes-version (master) finds them too.
//
// Each file is one JSON Schema (draft 4, kubeconform's default) for one
// group/version/kind. It is standalone: the definitions it uses are copied
// into its own "definitions", so recursive types need no outside file.
// Following kubernetes-json-schema (openapi2jsonschema --kubernetes):
//   - int-or-string fields accept a string or an integer, quantities a string
//     or a number;
//   - every field but the document itself may be null (the API server treats
//     null as unset);
//   - apiVersion and kind must be the file's own;
//   - in the -strict variant every object with declared properties rejects
//     others (additionalProperties: false), like kubectl's validation.
//
// It uses the standard library only, so it builds inside any module.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const quantity = "io.k8s.apimachinery.pkg.api.resource.Quantity"

type schema = map[string]any

type gvk struct{ Group, Version, Kind string }

func main() {
	swaggerPath := flag.String("swagger", "", "path of Kubernetes' api/openapi-spec/swagger.json")
	out := flag.String("out", "", "directory to write <version>-standalone[-strict]/ into")
	kubeVersion := flag.String("kubernetes-version", "", "Kubernetes version the swagger is from, e.g. v1.37.2")
	master := flag.Bool("master-links", true, "also link master-standalone[-strict] to the generated directories")
	flag.Parse()
	if *swaggerPath == "" || *out == "" || *kubeVersion == "" {
		flag.Usage()
		os.Exit(2)
	}
	version := "v" + strings.TrimPrefix(*kubeVersion, "v")

	raw, err := os.ReadFile(*swaggerPath)
	if err != nil {
		log.Fatal(err)
	}
	var spec struct {
		Definitions map[string]schema `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		log.Fatalf("%s: %v", *swaggerPath, err)
	}
	if len(spec.Definitions) == 0 {
		log.Fatalf("%s: no definitions", *swaggerPath)
	}

	for _, strict := range []bool{false, true} {
		dir := version + "-standalone"
		if strict {
			dir += "-strict"
		}
		n, err := writeVariant(spec.Definitions, filepath.Join(*out, dir), strict)
		if err != nil {
			log.Fatal(err)
		}
		if *master {
			link := filepath.Join(*out, strings.Replace(dir, version, "master", 1))
			_ = os.Remove(link)
			if err := os.Symlink(dir, link); err != nil {
				log.Fatal(err)
			}
		}
		fmt.Fprintf(os.Stderr, "k8sschemas: %d schemas in %s\n", n, filepath.Join(*out, dir))
	}
}

// writeVariant writes one file per group/version/kind and returns how many.
func writeVariant(defs map[string]schema, dir string, strict bool) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	converted := map[string]schema{}
	for name, def := range defs {
		converted[name] = convertDefinition(name, def, strict)
	}

	// A few meta types (DeleteOptions, WatchEvent, ...) carry the
	// group/version/kind of every API group. A type's own single kind wins
	// a file name over those; otherwise the first name in order does.
	names := make([]string, 0, len(defs))
	for name := range defs {
		if len(kinds(defs[name])) > 0 {
			names = append(names, name)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		ni, nj := len(kinds(defs[names[i]])), len(kinds(defs[names[j]]))
		if (ni == 1) != (nj == 1) {
			return ni == 1
		}
		return names[i] < names[j]
	})

	written := map[string]string{}
	for _, name := range names {
		for _, k := range kinds(defs[name]) {
			file := fileName(k)
			if prev, ok := written[file]; ok {
				if len(kinds(defs[prev])) == 1 && len(kinds(defs[name])) == 1 {
					fmt.Fprintf(os.Stderr, "k8sschemas: %s: %s and %s collide; keeping %s\n", file, prev, name, prev)
				}
				continue
			}
			written[file] = name
			doc := document(name, k, converted)
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(doc); err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			if err := os.WriteFile(filepath.Join(dir, file), buf.Bytes(), 0o644); err != nil {
				return 0, err
			}
		}
	}
	return len(written), nil
}

// kinds lists a definition's x-kubernetes-group-version-kind entries.
func kinds(def schema) []gvk {
	list, _ := def["x-kubernetes-group-version-kind"].([]any)
	var out []gvk
	for _, e := range list {
		m, _ := e.(map[string]any)
		g, _ := m["group"].(string)
		v, _ := m["version"].(string)
		k, _ := m["kind"].(string)
		if v != "" && k != "" {
			out = append(out, gvk{g, v, k})
		}
	}
	return out
}

func (k gvk) apiVersion() string {
	if k.Group == "" {
		return k.Version
	}
	return k.Group + "/" + k.Version
}

// fileName is the name kubeconform looks for:
// {{ .ResourceKind }}{{ .KindSuffix }}.json, i.e. the lower-case kind, the
// first label of the group (none for the core group) and the version.
func fileName(k gvk) string {
	suffix := "-" + strings.ToLower(k.Version)
	if k.Group != "" {
		suffix = "-" + strings.ToLower(strings.Split(k.Group, ".")[0]) + suffix
	}
	return strings.ToLower(k.Kind) + suffix + ".json"
}

// document builds the standalone schema of one kind: the converted
// definition itself as the root (not nullable, apiVersion and kind pinned)
// and every definition it reaches under "definitions".
func document(name string, k gvk, converted map[string]schema) schema {
	root := copySchema(converted[name])
	root["$schema"] = "http://json-schema.org/draft-04/schema#"
	root["type"] = "object"
	if props, ok := root["properties"].(map[string]any); ok {
		props = copySchema(props)
		props["apiVersion"] = schema{"type": "string", "enum": []any{k.apiVersion()}}
		props["kind"] = schema{"type": "string", "enum": []any{k.Kind}}
		root["properties"] = props
	}

	reached := map[string]any{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for key, e := range v {
				if ref, ok := e.(string); ok && key == "$ref" {
					target := strings.TrimPrefix(ref, "#/definitions/")
					if _, seen := reached[target]; !seen {
						if def, ok := converted[target]; ok {
							reached[target] = def
							walk(def)
						}
					}
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(root)
	if len(reached) > 0 {
		root["definitions"] = reached
	}
	return root
}

// convertDefinition converts one swagger definition into a JSON Schema.
func convertDefinition(name string, def schema, strict bool) schema {
	if name == quantity {
		return schema{"type": []any{"string", "number", "null"}}
	}
	return convert(def, strict)
}

// convert rewrites a swagger schema node as a draft-4 JSON Schema node. It
// walks the schema keywords only, so a property that happens to be called
// "type" or "format" (apiextensions' JSONSchemaProps has both) stays a
// property.
func convert(s schema, strict bool) schema {
	if f, _ := s["format"].(string); f == "int-or-string" {
		return schema{"type": []any{"string", "integer", "null"}}
	}
	out := schema{}
	for key, v := range s {
		switch {
		case strings.HasPrefix(key, "x-"), key == "description":
			// Vendor extensions and prose do not validate anything.
		case key == "type":
			if t, ok := v.(string); ok && t != "null" {
				out[key] = []any{t, "null"}
			} else {
				out[key] = v
			}
		case key == "properties":
			props := map[string]any{}
			for p, ps := range v.(map[string]any) {
				props[p] = convertAny(ps, strict)
			}
			out[key] = props
		case key == "items", key == "additionalProperties", key == "not":
			out[key] = convertAny(v, strict)
		case key == "allOf", key == "anyOf", key == "oneOf":
			list := []any{}
			for _, e := range v.([]any) {
				list = append(list, convertAny(e, strict))
			}
			out[key] = list
		default:
			out[key] = v
		}
	}
	if strict {
		_, hasProps := s["properties"]
		_, hasAdditional := s["additionalProperties"]
		preserve, _ := s["x-kubernetes-preserve-unknown-fields"].(bool)
		if hasProps && !hasAdditional && !preserve {
			out["additionalProperties"] = false
		}
	}
	return out
}

func convertAny(v any, strict bool) any {
	switch v := v.(type) {
	case map[string]any:
		return convert(v, strict)
	case []any:
		list := []any{}
		for _, e := range v {
			list = append(list, convertAny(e, strict))
		}
		return list
	default:
		return v
	}
}

func copySchema(s schema) schema {
	out := make(schema, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}
