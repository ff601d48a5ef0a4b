// Command infra is the Pulumi program of the notes stack (project `notes`, `main: infra/`).
// It deploys the service, Postgres, Nginx and backups to one Docker host; see docs/infra.md.
package main

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		cfg, err := LoadConfig(ctx)
		if err != nil {
			return err
		}
		for _, w := range cfg.Warnings() {
			if err := ctx.Log.Warn(w, nil); err != nil {
				return err
			}
		}
		_, err = NewStack(ctx, cfg)
		return err
	})
}
