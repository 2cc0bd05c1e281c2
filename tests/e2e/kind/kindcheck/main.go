// kindcheck loads kind cluster configs with kind's own loader (strict YAML, API version
// conversion, defaults) and validation, without creating anything. tests/e2e/test_kind_scripts.py
// builds it inside a copy of the sigs.k8s.io/kind module (its internal packages are importable
// only from within that module).
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/internal/apis/config/encoding"
)

func main() {
	failed := false
	for _, path := range os.Args[1:] {
		cfg, err := encoding.Load(path)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			fmt.Printf("%s: %v\n", path, err)
			failed = true
			continue
		}
		for _, node := range cfg.Nodes {
			fmt.Printf("%s: ok: %s node, image %s, %d extra mounts\n", path, node.Role,
				node.Image, len(node.ExtraMounts))
		}
	}
	if failed {
		os.Exit(1)
	}
}
