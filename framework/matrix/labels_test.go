package matrix

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
)

func TestLabels(t *testing.T) {
	_, scenarios := loadRepository(t)
	for _, s := range Specs(scenarios) {
		labels := Labels(s)
		if len(labels) != 3 {
			t.Errorf("%s: labels %v, want one cni, one binding and one strategy label", s.Name, labels)
		}
		if s.Spec.CNI != "" && !slices.Contains(labels, "cni:"+s.Spec.CNI) {
			t.Errorf("%s: labels %v lack cni:%s", s.Name, labels, s.Spec.CNI)
		}
		if s.Spec.Binding != "" && !slices.Contains(labels, "binding:"+s.Spec.Binding) {
			t.Errorf("%s: labels %v lack binding:%s", s.Name, labels, s.Spec.Binding)
		}
		if !slices.Contains(labels, "strategy:"+s.Spec.Strategy) {
			t.Errorf("%s: labels %v lack strategy:%s", s.Name, labels, s.Spec.Strategy)
		}
	}
}

func TestSelect(t *testing.T) {
	_, scenarios := loadRepository(t)
	// The predicates read the fields the report records, which fill in the
	// CNI and binding of plain manifests from their attachments.
	for _, tc := range []struct {
		filter string
		want   func(r report.Result) bool
	}{
		{"", func(report.Result) bool { return true }},
		{"cni:macvlan", func(r report.Result) bool { return r.CNI == "macvlan" }},
		{"cni: containsAny {macvlan, bridge} && strategy: containsAny {ipam-dhcp}", func(r report.Result) bool {
			return (r.CNI == "macvlan" || r.CNI == "bridge") && r.Strategy == "ipam-dhcp"
		}},
		{"!binding:macvtap && !strategy:ip-address-field", func(r report.Result) bool {
			return r.Binding != "macvtap" && r.Strategy != "ip-address-field"
		}},
		{"strategy: isSubsetOf {ipam-dhcp, cloud-init-mac-match}", func(r report.Result) bool {
			return r.Strategy == "ipam-dhcp" || r.Strategy == "cloud-init-mac-match"
		}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			selected, err := Select(tc.filter, scenarios)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, s := range Specs(scenarios) {
				if tc.want(report.NewResult(s, "")) {
					want = append(want, s.Name)
				}
			}
			var got []string
			for _, s := range selected {
				got = append(got, s.Name)
			}
			if len(want) == 0 {
				t.Fatal("the case selects nothing: it would not test the filter")
			}
			if !slices.Equal(got, want) {
				t.Errorf("selected %v\nwant %v", got, want)
			}
		})
	}

	examples := 0
	all, err := Select("", scenarios)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scenarios {
		if !s.Harness {
			examples++
			if slices.Contains(all, s) {
				t.Errorf("%s (%s) has no harness section, which the e2e suite skips, but the empty filter selects it", s.Name, s.Source)
			}
		}
	}
	if examples == 0 {
		t.Log("scenarios/ has no file without a harness section: the exclusion is not exercised")
	}

	if _, err := Select("cni: {macvlan}", scenarios); err == nil || !strings.Contains(err.Error(), "Invalid set operation") {
		t.Errorf("invalid filter: error %v, want Ginkgo's syntax error", err)
	}
}

func TestFilterLabels(t *testing.T) {
	for filter, want := range map[string][]labelRef{
		"":            nil,
		"cni:macvlan": {{key: "cni", value: "macvlan"}},
		"strategy: containsAny {ip-address-field, cloud-init-nic-name} && !cni: containsAny {macvtap}": {
			{key: "strategy", value: "ip-address-field"}, {key: "strategy", value: "cloud-init-nic-name"}, {key: "cni", value: "macvtap"},
		},
		"(cni:bridge || cni:macvlan) && !binding:macvtap": {
			{key: "cni", value: "bridge"}, {key: "cni", value: "macvlan"}, {key: "binding", value: "macvtap"},
		},
		"cni: isEmpty || /mac/":          {{key: "cni", keyOnly: true}},
		"strategy: consistsOf ipam-dhcp": {{key: "strategy", value: "ipam-dhcp"}},
		"CNI:MacVlan":                    {{key: "cni", value: "macvlan"}},
	} {
		if got := filterLabels(filter); !reflect.DeepEqual(got, want) {
			t.Errorf("filterLabels(%q) = %+v, want %+v", filter, got, want)
		}
	}
}
