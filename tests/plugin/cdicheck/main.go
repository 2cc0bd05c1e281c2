// cdicheck loads the CDI specs of a directory with the CDI library containerd uses
// (tags.cncf.io/container-device-interface, pkg/cdi) and injects the named devices into an
// empty OCI spec, as a runtime does when it creates a container.
//
// Usage: cdicheck [-base config.json] SPEC_DIR DEVICE...  (fully qualified names,
// vendor/class=name); -base starts from that OCI spec (a bundle's config.json) instead.
// Prints the devices the cache knows and the edited OCI spec as JSON; exit status 1 with one
// line per problem when a spec is refused or a device cannot be injected.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"

	oci "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

func main() {
	base := flag.String("base", "", "OCI spec to start from (default: an empty one)")
	flag.Parse()
	if flag.NArg() < 2 {
		fmt.Fprintln(os.Stderr, "usage: cdicheck [-base config.json] SPEC_DIR DEVICE...")
		os.Exit(2)
	}
	spec := &oci.Spec{Process: &oci.Process{}, Linux: &oci.Linux{}}
	if *base != "" {
		data, err := os.ReadFile(*base)
		if err == nil {
			err = json.Unmarshal(data, spec)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "base spec: %v\n", err)
			os.Exit(2)
		}
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(flag.Arg(0)), cdi.WithAutoRefresh(false))
	failed := false
	if err != nil {
		fmt.Fprintf(os.Stderr, "cache: %v\n", err)
		failed = true
	}
	var paths []string
	for path := range cache.GetErrors() {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	for _, path := range paths {
		for _, e := range cache.GetErrors()[path] {
			fmt.Fprintf(os.Stderr, "spec %s: %v\n", path, e)
			failed = true
		}
	}
	unresolved, err := cache.InjectDevices(spec, flag.Args()[1:]...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "inject: %v (unresolved: %v)\n", err, unresolved)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
	out := map[string]any{"devices": cache.ListDevices(), "oci": spec}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "output: %v\n", err)
		os.Exit(1)
	}
}
