// Command omscloud is the Pulumi program: `pulumi preview -s prod` / `pulumi up -s prod-eu` with the official CLI.
package main

import (
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

func main() { pulumi.Run(stacks.Program) }
