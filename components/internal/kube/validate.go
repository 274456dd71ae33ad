package kube

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Size sizes each replica of a stateful workload (Kubernetes quantities), as stacks.WorkloadSize does.
type Size struct {
	// CPU is a CPU quantity ("250m", "1", "1.5").
	CPU string
	// Memory is a memory quantity ("512Mi", "4Gi").
	Memory string
	// StorageGB is the persistent volume of each replica, in GiB.
	StorageGB int
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	quantity     = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$`)
	labelKeyName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	labelValue   = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)
	digest       = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	imageTag     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	effects      = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}
)

var suffixes = map[string]float64{
	"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
}

// parseQuantity reads the subset of Kubernetes quantities used for CPU and memory.
func parseQuantity(q string) (float64, bool) {
	m := quantity.FindStringSubmatch(q)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	return n * suffixes[m[2]], true
}

// MemoryBytes converts a memory quantity to bytes.
func MemoryBytes(q string) (int64, error) {
	v, ok := parseQuantity(q)
	if !ok || v < 1 {
		return 0, fmt.Errorf("%q is not a memory quantity: use e.g. 512Mi or 4Gi", q)
	}
	return int64(v), nil
}

// Validate reports every problem of the size; field names the Args field ("Size").
func (s Size) Validate(field string, minMemory int64) []error {
	var errs []error
	if cpu, ok := parseQuantity(s.CPU); !ok || cpu <= 0 {
		errs = append(errs, fmt.Errorf("%s.CPU %q is not a CPU quantity: use e.g. 250m or 1", field, s.CPU))
	}
	if mem, err := MemoryBytes(s.Memory); err != nil {
		errs = append(errs, fmt.Errorf("%s.Memory: %w", field, err))
	} else if mem < minMemory {
		errs = append(errs, fmt.Errorf("%s.Memory %s is below the minimum of %dMi", field, s.Memory, minMemory>>20))
	}
	if s.StorageGB < 1 {
		errs = append(errs, fmt.Errorf("%s.StorageGB is %d: give each replica a volume of at least 1 GiB", field, s.StorageGB))
	}
	return errs
}

// ValidateName checks a name that prefixes Kubernetes object names (a DNS-1035 label, so that Services accept it),
// leaving room for the component's suffixes.
func ValidateName(field, name string, max int) error {
	if name == "" {
		return fmt.Errorf("%s is required: the prefix of every object name, e.g. oms-prod-us", field)
	}
	if len(name) > max || !dnsLabel.MatchString(name) {
		return fmt.Errorf("%s %q must be a DNS label of at most %d characters: lowercase letters, digits and '-', starting with a letter", field, name, max)
	}
	return nil
}

// ValidateNamespace checks a namespace name.
func ValidateNamespace(field, ns string) error {
	if ns == "" {
		return fmt.Errorf("%s is required: the existing namespace to deploy into", field)
	}
	if len(ns) > 63 || !dnsLabel.MatchString(ns) {
		return fmt.Errorf("%s %q is not a valid namespace name (a DNS label of at most 63 characters)", field, ns)
	}
	return nil
}

// ValidateReplicas requires an odd quorum of at least 3, so a majority survives the loss of one replica.
func ValidateReplicas(field string, n int) error {
	if n < 3 || n%2 == 0 {
		return fmt.Errorf("%s is %d: use an odd number of at least 3 so that a majority survives losing one replica", field, n)
	}
	return nil
}

// ValidateImage requires an image pinned to an exact tag or a digest.
func ValidateImage(field, image string) error {
	ref := digest.ReplaceAllString(image, "")
	hasDigest := ref != image
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	tag := ""
	if colon > slash {
		tag = ref[colon+1:]
	}
	switch {
	case ref == "":
		return fmt.Errorf("%s is empty: use an official image pinned by version, e.g. redis:7.2.5", field)
	case tag != "" && !imageTag.MatchString(tag):
		return fmt.Errorf("%s %q has an invalid tag", field, image)
	case !hasDigest && (tag == "" || tag == "latest"):
		return fmt.Errorf("%s %q is not pinned: give an exact version tag or a @sha256 digest", field, image)
	}
	return nil
}

// ValidateLabels checks that labels are valid Kubernetes labels and do not override the component's own.
func ValidateLabels(field string, labels map[string]string) []error {
	var errs []error
	for k, v := range labels {
		name := k
		if prefix, n, ok := strings.Cut(k, "/"); ok {
			name = n
			if prefix == "app.kubernetes.io" {
				errs = append(errs, fmt.Errorf("%s: %q is set by the component; remove it", field, k))
			}
			if len(prefix) > 253 || prefix == "" {
				errs = append(errs, fmt.Errorf("%s: key %q has an invalid prefix", field, k))
			}
		}
		if len(name) > 63 || !labelKeyName.MatchString(name) {
			errs = append(errs, fmt.Errorf("%s: key %q is not a valid label key", field, k))
		}
		if len(v) > 63 || !labelValue.MatchString(v) {
			errs = append(errs, fmt.Errorf("%s: value %q of %q is not a valid label value (≤ 63 of [A-Za-z0-9._-], alphanumeric at both ends)", field, v, k))
		}
	}
	return errs
}

// ValidateSelector requires a non-empty, valid label selector: an empty one would admit every pod.
func ValidateSelector(field string, selector map[string]string) []error {
	if len(selector) == 0 {
		return []error{fmt.Errorf("%s is empty: give the labels of the runtime pods that may connect (an empty selector would admit every pod)", field)}
	}
	var errs []error
	for k, v := range selector {
		if len(v) > 63 || !labelValue.MatchString(v) || k == "" {
			errs = append(errs, fmt.Errorf("%s: %q=%q is not a valid label", field, k, v))
		}
	}
	return errs
}

// Validate checks the placement's tolerations.
func (p Placement) Validate(field string) []error {
	var errs []error
	for _, t := range p.Tolerations {
		if t.Key == "" || !slices.Contains(effects, t.Effect) {
			errs = append(errs, fmt.Errorf("%s: toleration %q needs a key and an effect among %v (got %q)", field, t.Key, effects, t.Effect))
		}
	}
	return errs
}

// ValidateStorageClass requires a storage class name.
func ValidateStorageClass(field, class string) error {
	if class == "" || len(class) > 253 {
		return fmt.Errorf("%s %q is not a storage class name: use e.g. %s", field, class, DefaultStorageClass)
	}
	return nil
}
