// Command bench runs equarx benchmarks. Usage:
//
//	bench <subcommand> [flags]
//
// Each subcommand lives in its own file and registers itself in init.
// Every reported time is labelled: simulated TPU seconds (the cost model)
// or CPU wall seconds (this machine).
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

type subcommand struct {
	summary string
	run     func(args []string, stdout io.Writer) error
}

var subcommands = map[string]subcommand{}

// register adds a subcommand; it panics on a duplicate name.
func register(name, summary string, run func(args []string, stdout io.Writer) error) {
	if _, ok := subcommands[name]; ok {
		panic("bench: subcommand registered twice: " + name)
	}
	subcommands[name] = subcommand{summary, run}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: bench <subcommand> [flags]   (bench <subcommand> -h for its flags)")
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, subcommands[n].summary)
	}
}

func main() {
	if len(os.Args) >= 2 && os.Args[1] == workerCmd {
		if err := workerMain(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "bench worker: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stderr)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	sc, ok := subcommands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: unknown subcommand %q\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	if err := sc.run(os.Args[2:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
