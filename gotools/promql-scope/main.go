// promql-scope reads Prometheus rule files and prints every selector of every rule that does not select one
// namespace by equality (namespace="<ns>" or exported_namespace="<ns>"), parsed by Prometheus' own PromQL parser.
// Exit 1 when it prints any; 2 when a file does not parse.
//
//	promql-scope -namespace real-estate file.rules.yml...
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// The labels that carry a series' namespace: its own, or the one a scrape without honorLabels moved aside.
var namespaceLabels = map[string]bool{"namespace": true, "exported_namespace": true}

func scoped(matchers []*labels.Matcher, namespace string) bool {
	for _, m := range matchers {
		if namespaceLabels[m.Name] && m.Type == labels.MatchEqual && m.Value == namespace {
			return true
		}
	}
	return false
}

func main() {
	namespace := flag.String("namespace", "", "the namespace every selector must select")
	flag.Parse()
	if *namespace == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: promql-scope -namespace NS FILE...")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	unscoped := 0
	for _, file := range flag.Args() {
		groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, p, logger)
		if len(errs) > 0 {
			for _, err := range errs {
				fmt.Fprintln(os.Stderr, err)
			}
			os.Exit(2)
		}
		for _, group := range groups.Groups {
			for _, rule := range group.Rules {
				name := rule.Alert + rule.Record
				expr, err := p.ParseExpr(rule.Expr)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s: %s/%s: %v\n", file, group.Name, name, err)
					os.Exit(2)
				}
				parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
					if selector, ok := node.(*parser.VectorSelector); ok && !scoped(selector.LabelMatchers, *namespace) {
						fmt.Printf("%s: %s/%s: %s\n", file, group.Name, name, selector)
						unscoped++
					}
					return nil
				})
			}
		}
	}
	if unscoped > 0 {
		os.Exit(1)
	}
}
