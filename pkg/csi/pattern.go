package csi

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A StorageClass's pathPattern makes the model path of each PVC. It is an
// absolute path in the volume with references:
//
//	${pvc.namespace}                 the PVC's namespace
//	${pvc.name}                      the PVC's name
//	${pv.name}                       the PV's name
//	${pvc.annotations['KEY']}        the PVC's annotation KEY (read from the API server)
//
// e.g. /models/${pvc.annotations['ringcache.io/model']}/${pvc.annotations['ringcache.io/version']}.
// The references need the external-provisioner's --extra-create-metadata;
// annotations also need the controller's Kubernetes client. The expanded
// path is validated like any model path: substituted values may contain
// "/" (model IDs such as meta-llama/Llama-3.1-8B do) but a result with
// ".." or outside allowedPrefix is refused.

type refKind int

const (
	refLiteral refKind = iota
	refPVCNamespace
	refPVCName
	refPVName
	refPVCAnnotation
)

type patternPart struct {
	kind refKind
	text string // the literal, or the annotation key
}

// pattern is a parsed pathPattern.
type pattern []patternPart

// parsePattern parses a pathPattern; errors are InvalidArgument.
func parsePattern(s string) (pattern, error) {
	if s == "" {
		return nil, status.Errorf(codes.InvalidArgument, "StorageClass parameter %q is required", KeyPathPattern)
	}
	if !strings.HasPrefix(s, "/") {
		return nil, status.Errorf(codes.InvalidArgument, "%s %q must be an absolute path in the volume", KeyPathPattern, s)
	}
	var out pattern
	rest := s
	for rest != "" {
		i := strings.Index(rest, "${")
		if i < 0 {
			out = append(out, patternPart{kind: refLiteral, text: rest})
			break
		}
		if i > 0 {
			out = append(out, patternPart{kind: refLiteral, text: rest[:i]})
		}
		end := strings.Index(rest[i:], "}")
		if end < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "%s %q: unterminated ${", KeyPathPattern, s)
		}
		expr := strings.TrimSpace(rest[i+2 : i+end])
		part, err := parseRef(expr)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s %q: %v", KeyPathPattern, s, err)
		}
		out = append(out, part)
		rest = rest[i+end+1:]
	}
	return out, nil
}

type refError string

func (e refError) Error() string { return string(e) }

func parseRef(expr string) (patternPart, error) {
	switch expr {
	case "pvc.namespace":
		return patternPart{kind: refPVCNamespace}, nil
	case "pvc.name":
		return patternPart{kind: refPVCName}, nil
	case "pv.name":
		return patternPart{kind: refPVName}, nil
	}
	if inner, ok := strings.CutPrefix(expr, "pvc.annotations["); ok {
		if inner, ok = strings.CutSuffix(inner, "]"); ok && len(inner) >= 3 {
			q := inner[0]
			if (q == '\'' || q == '"') && inner[len(inner)-1] == q {
				key := inner[1 : len(inner)-1]
				if key != "" && !strings.ContainsAny(key, "'\"${}") {
					return patternPart{kind: refPVCAnnotation, text: key}, nil
				}
			}
		}
		return patternPart{}, refError("annotation references are written ${pvc.annotations['KEY']}")
	}
	return patternPart{}, refError("unknown reference ${" + expr + "} (known: pvc.namespace, pvc.name, pv.name, pvc.annotations['KEY'])")
}

// needs reports which references the pattern uses.
func (p pattern) needs(k refKind) bool {
	for _, part := range p {
		if part.kind == k {
			return true
		}
	}
	return false
}

// patternVars are the values references expand to.
type patternVars struct {
	PVCNamespace, PVCName, PVName string
	Annotations                   map[string]string
}

// expand substitutes the references; a missing or empty value is
// InvalidArgument. The caller validates the result as a path.
func (p pattern) expand(v patternVars) (string, error) {
	var b strings.Builder
	for _, part := range p {
		var val, what string
		switch part.kind {
		case refLiteral:
			b.WriteString(part.text)
			continue
		case refPVCNamespace:
			val, what = v.PVCNamespace, "the PVC namespace (parameter "+keyPVCNamespace+")"
		case refPVCName:
			val, what = v.PVCName, "the PVC name (parameter "+keyPVCName+")"
		case refPVName:
			val, what = v.PVName, "the PV name (parameter "+keyPVName+")"
		case refPVCAnnotation:
			val, what = v.Annotations[part.text], "PVC annotation "+part.text
		}
		if val == "" {
			return "", status.Errorf(codes.InvalidArgument, "%s uses %s, which is missing or empty", KeyPathPattern, what)
		}
		b.WriteString(val)
	}
	return b.String(), nil
}
