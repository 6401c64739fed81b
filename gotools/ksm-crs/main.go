// ksm-crs renders kube-state-metrics CustomResourceState metrics for objects read
// from a YAML file instead of a live cluster, using only exported KSM v2 API.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/prometheus/common/expfmt"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
	goyaml "sigs.k8s.io/yaml/goyaml.v3" // same decoder KSM uses for --custom-resource-state-config-file

	"k8s.io/kube-state-metrics/v2/pkg/customresourcestate"
	"k8s.io/kube-state-metrics/v2/pkg/metric"
	generator "k8s.io/kube-state-metrics/v2/pkg/metric_generator"
	metricsstore "k8s.io/kube-state-metrics/v2/pkg/metrics_store"
)

func main() {
	configPath := flag.String("config", "", "CustomResourceStateMetrics config file (YAML)")
	objectsPath := flag.String("objects", "", "custom resource objects (multi-document YAML; kind: List allowed)")
	openMetrics := flag.Bool("openmetrics", false, "emit OpenMetrics instead of Prometheus text 0.0.4")
	flag.Parse()
	if *configPath == "" || *objectsPath == "" {
		fail(fmt.Errorf("usage: ksm-crs --config crs.yaml --objects objs.yaml"))
	}
	objs, err := loadObjects(*objectsPath)
	fail(err)
	var cfg customresourcestate.Metrics
	data, err := os.ReadFile(*configPath)
	fail(err)
	fail(goyaml.NewDecoder(bytes.NewReader(data)).Decode(&cfg))

	var writers metricsstore.MetricsWriterList
	for _, res := range cfg.Spec.Resources {
		for i := range res.Metrics { // FromConfig does this too: "Gauge" -> "gauge"
			res.Metrics[i].Each.Type = metric.Type(strings.ToLower(string(res.Metrics[i].Each.Type)))
		}
		// Stand-in for CRD discovery: resolve the GVK (incl. "*" wildcards) against the objects given.
		for _, gvk := range resolveGVKs(res.GroupVersionKind, objs) {
			res.GroupVersionKind = customresourcestate.GroupVersionKind(gvk)
			factory, err := customresourcestate.NewCustomResourceMetrics(res)
			fail(err)
			gens := factory.MetricFamilyGenerators()
			headers, genFunc := generator.ExtractMetricFamilyHeaders(gens), generator.ComposeMetricGenFuncs(gens)
			// One store per object keeps file order (a single KSM store is a sync.Map keyed by UID).
			var stores []*metricsstore.MetricsStore
			for _, o := range objs {
				if o.GroupVersionKind() == gvk {
					s := metricsstore.NewMetricsStore(headers, genFunc)
					fail(s.Add(o))
					stores = append(stores, s)
				}
			}
			writers = append(writers, metricsstore.NewMetricsWriter(factory.Name(), stores...))
		}
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	if *openMetrics {
		format = expfmt.NewFormat(expfmt.TypeOpenMetrics)
	}
	out := bufio.NewWriter(os.Stdout)
	for _, w := range metricsstore.SanitizeHeaders(format, writers) { // what KSM's /metrics handler does
		fail(w.WriteAll(out))
	}
	if *openMetrics {
		out.WriteString("# EOF\n")
	}
	fail(out.Flush())
}

func resolveGVKs(want customresourcestate.GroupVersionKind, objs []*unstructured.Unstructured) (gvks []schema.GroupVersionKind) {
	seen := map[schema.GroupVersionKind]bool{}
	for _, o := range objs {
		g := o.GroupVersionKind()
		if g.Group == want.Group && (want.Version == "*" || want.Version == "" || want.Version == g.Version) &&
			(want.Kind == "*" || want.Kind == "" || want.Kind == g.Kind) && !seen[g] {
			seen[g] = true
			gvks = append(gvks, g)
		}
	}
	return gvks
}

func loadObjects(path string) (objs []*unstructured.Unstructured, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, nil
		} else if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(j)); s == "null" || s == "" {
			continue // empty document
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil { // numbers become int64/float64, as from the dynamic client
			return nil, err
		}
		add := func(o runtime.Object) error {
			item := o.(*unstructured.Unstructured)
			if item.GetUID() == "" { // MetricsStore keys entries by UID
				item.SetUID(types.UID(item.GetNamespace() + "/" + item.GetName()))
			}
			objs = append(objs, item)
			return nil
		}
		if u.IsList() {
			err = u.EachListItem(add)
		} else {
			err = add(u)
		}
		if err != nil {
			return nil, err
		}
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "ksm-crs:", err)
		os.Exit(1)
	}
}
