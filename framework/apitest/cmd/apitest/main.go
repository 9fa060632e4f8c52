// Command apitest builds the kube-apiserver test environment's programs and
// CRDs into the cache, or runs the environment until interrupted.
//
//	go run ./framework/apitest/cmd/apitest build
//	go run ./framework/apitest/cmd/apitest run -kubeconfig /tmp/apitest.kubeconfig
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/vmnet-e2e/vmnet-e2e/framework/apitest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
)

const usage = `usage: apitest build | run [-kubeconfig FILE]

build  builds kube-apiserver, etcd and KubeVirt's CRDs from the modules under
       tools/ into the cache, unless they are there already
run    starts etcd and kube-apiserver on 127.0.0.1 with the CRDs installed,
       writes a kubeconfig and waits for Ctrl-C, then stops both`

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := cleanup.NotifyContext(context.Background())
	defer stop()

	var err error
	switch os.Args[1] {
	case "build":
		err = build(ctx, log)
	case "run":
		err = run(ctx, log, os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		log.Error("apitest failed", "error", err)
		stop()
		os.Exit(1)
	}
}

func build(ctx context.Context, log *slog.Logger) error {
	a, err := apitest.Build(ctx, apitest.WithLogger(log))
	if err != nil {
		return err
	}
	fmt.Printf("kube-apiserver %s: %s\netcd %s: %s\nKubeVirt %s CRDs: %s\n",
		a.Versions.Kubernetes, a.KubeAPIServer, a.Versions.Etcd, a.Etcd, a.Versions.KubeVirt, a.KubeVirtCRDDir)
	return nil
}

func run(ctx context.Context, log *slog.Logger, args []string) error {
	flags := flag.NewFlagSet("run", flag.ContinueOnError)
	kubeconfig := flags.String("kubeconfig", "apitest.kubeconfig", "file to write the kubeconfig to")
	if err := flags.Parse(args); err != nil {
		return err
	}

	env, err := apitest.Start(ctx, apitest.WithLogger(log))
	if err != nil {
		return err
	}
	data, err := env.Kubeconfig()
	if err == nil {
		err = os.WriteFile(*kubeconfig, data, 0o600)
	}
	if err != nil {
		return errors.Join(err, env.Stop(context.WithoutCancel(ctx)))
	}
	fmt.Printf("kube-apiserver at %s; KUBECONFIG=%s; Ctrl-C stops it\n", env.Config().Host, *kubeconfig)

	<-ctx.Done()
	return errors.Join(env.Stop(context.WithoutCancel(ctx)), os.Remove(*kubeconfig))
}
