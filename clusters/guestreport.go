package clusters

import (
	"github.com/vmnet-e2e/vmnet-e2e/framework/guest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// GuestReport converts the evidence a guest printed on its serial console
// into the verdict's form, the same way for every provider.
func GuestReport(e *guest.Evidence) *verdict.Guest {
	g := &verdict.Guest{
		Stage:             string(e.Stage),
		CloudInitStatus:   CloudInitStatus(e.CloudInit),
		CloudInitErrors:   e.CloudInit.Errors,
		CloudInitWarnings: e.Warnings,
		RenderedConfig:    e.Rendered,
	}
	for _, i := range e.Interfaces {
		if i.LinkType == "loopback" {
			continue
		}
		nic := verdict.GuestInterface{Name: i.Name, MAC: i.MAC.String(), State: i.OperState}
		for _, a := range i.GlobalAddresses() {
			nic.Addresses = append(nic.Addresses, a.String())
		}
		g.Interfaces = append(g.Interfaces, nic)
	}
	return g
}

// CloudInitStatus words cloud-init's state as `cloud-init status` does:
// running (with the stage), done or error.
func CloudInitStatus(c guest.CloudInitStatus) string {
	switch {
	case c.Finished && len(c.Errors) > 0:
		return "error"
	case c.Finished:
		return "done"
	case len(c.Errors) > 0:
		return "running, errors recorded"
	case c.CurrentStage != "":
		return "running (" + c.CurrentStage + ")"
	}
	return "running"
}
