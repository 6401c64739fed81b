// Command amconfig renders the alertmanager.yaml that prometheus-operator
// would generate from a base configuration plus AlertmanagerConfig objects.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"net/url"
	"os"

	"github.com/blang/semver/v4"
	"github.com/prometheus-operator/prometheus-operator/pkg/alertmanager"
	validationv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/alertmanager/validation/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"github.com/prometheus-operator/prometheus-operator/pkg/assets"
	amconfig "github.com/prometheus/alertmanager/config"
	amtemplate "github.com/prometheus/alertmanager/template"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/fake"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	amNamespace = "monitoring"
	amVersion   = "0.33.1"
)

func main() {
	base := flag.String("base", "", "base alertmanager.yaml")
	configs := flag.String("configs", "", "multi-document YAML of AlertmanagerConfig (v1alpha1) objects")
	secrets := flag.String("secrets", "", "multi-document YAML of v1 Secret objects (optional)")
	flag.Parse()
	if *base == "" || *configs == "" {
		flag.Usage()
		os.Exit(2)
	}
	out, err := render(context.Background(), *base, *configs, *secrets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "amconfig:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

func render(ctx context.Context, basePath, configsPath, secretsPath string) ([]byte, error) {
	baseCfg, err := os.ReadFile(basePath)
	if err != nil {
		return nil, err
	}
	amcs, err := decodeAll[monitoringv1alpha1.AlertmanagerConfig](configsPath)
	if err != nil {
		return nil, err
	}
	var secrets []*corev1.Secret
	if secretsPath != "" {
		if secrets, err = decodeAll[corev1.Secret](secretsPath); err != nil {
			return nil, err
		}
	}

	client := fake.NewClientset()
	for _, s := range secrets {
		// The fake clientset does not merge stringData into data like the API server does.
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
		if _, err := client.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, err)
		}
	}

	byKey := make(map[string]*monitoringv1alpha1.AlertmanagerConfig, len(amcs))
	for _, amc := range amcs {
		key := amc.Namespace + "/" + amc.Name
		switch {
		case amc.APIVersion != monitoringv1alpha1.SchemeGroupVersion.String() || amc.Kind != monitoringv1alpha1.AlertmanagerConfigKind:
			return nil, fmt.Errorf("%s: want %s %s, got %s %s", key, monitoringv1alpha1.SchemeGroupVersion, monitoringv1alpha1.AlertmanagerConfigKind, amc.APIVersion, amc.Kind)
		case amc.Namespace == "" || amc.Name == "":
			return nil, fmt.Errorf("AlertmanagerConfig %q: metadata.name and metadata.namespace are required", key)
		}
		// Same semantic validation the operator runs before selecting the object.
		if err := validationv1alpha1.ValidateAlertmanagerConfig(amc); err != nil {
			return nil, fmt.Errorf("AlertmanagerConfig %s rejected: %w", key, err)
		}
		byKey[key] = amc
	}

	am := &monitoringv1.Alertmanager{
		ObjectMeta: metav1.ObjectMeta{Name: "main", Namespace: amNamespace},
		Spec: monitoringv1.AlertmanagerSpec{
			Version:                           amVersion,
			AlertmanagerConfigMatcherStrategy: monitoringv1.AlertmanagerConfigMatcherStrategy{Type: monitoringv1.OnNamespaceConfigMatcherStrategyType},
		},
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store := assets.NewStoreBuilder(client.CoreV1(), client.CoreV1())
	cb := alertmanager.NewConfigBuilder(logger, semver.MustParse(amVersion), store, am)
	if err := cb.InitializeFromRawConfiguration(baseCfg); err != nil {
		return nil, fmt.Errorf("base config: %w", err)
	}
	if err := cb.AddAlertmanagerConfigs(ctx, byKey); err != nil {
		return nil, fmt.Errorf("generating config: %w", err)
	}
	out, err := cb.MarshalJSON() // despite the name, this returns YAML
	if err != nil {
		return nil, err
	}
	// Extra check beyond the operator: would Alertmanager itself load the result?
	loaded, err := amconfig.Load(string(out))
	if err != nil {
		return nil, fmt.Errorf("generated config rejected by alertmanager: %w", err)
	}
	if err := checkAddresses(loaded); err != nil {
		return nil, err
	}
	return out, nil
}

// checkAddresses does at load time what Alertmanager's e-mail notifier does only when it sends (notify/email): expand
// each from and to as a template, parse them as address lists, require exactly one sender, and write the From header
// as it does (Q-encoded), which a mail reader must still parse. Alertmanager loads a
// configuration whose addresses it cannot parse and fails every notification.
func checkAddresses(cfg *amconfig.Config) error {
	tmpl, err := amtemplate.FromGlobs(nil)
	if err != nil {
		return err
	}
	// Alertmanager sets its --web.external-url here; the data of a notification links to it.
	if tmpl.ExternalURL, err = url.Parse("http://alertmanager.monitoring.svc:9093"); err != nil {
		return err
	}
	for _, receiver := range cfg.Receivers {
		data := tmpl.Data(receiver.Name, nil, "")
		for _, email := range receiver.EmailConfigs {
			for field, text := range map[string]string{"from": email.From, "to": email.To} {
				expanded, err := tmpl.ExecuteTextString(text, data)
				if err != nil {
					return fmt.Errorf("receiver %s: %s: %w", receiver.Name, field, err)
				}
				addresses, err := mail.ParseAddressList(expanded)
				if err != nil {
					return fmt.Errorf("receiver %s: %s %q: %w", receiver.Name, field, expanded, err)
				}
				if field == "from" && len(addresses) != 1 {
					return fmt.Errorf("receiver %s: from %q holds %d addresses, not one", receiver.Name, expanded, len(addresses))
				}
				// The From header: Alertmanager writes every header Q-encoded whole (notify/email), address included;
				// a reader must still find the address in it.
				if field == "from" {
					header := mime.QEncoding.Encode("utf-8", expanded)
					if _, err := mail.ParseAddress(header); err != nil {
						return fmt.Errorf("receiver %s: the From header %q sent for from %q: %w", receiver.Name, header, expanded, err)
					}
				}
			}
		}
	}
	return nil
}

// decodeAll strictly decodes every non-empty document of a multi-document YAML file.
func decodeAll[T any](path string) ([]*T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var objs []*T
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if string(j) == "null" {
			continue // empty or comment-only document
		}
		// Case-sensitive and strict like the API server (encoding/json would
		// silently accept e.g. "weChatConfigs" for "wechatConfigs").
		obj := new(T)
		strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err = errors.Join(append(strict, err)...); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		objs = append(objs, obj)
	}
}
