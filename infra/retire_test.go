package main

import (
	"slices"
	"strings"
	"testing"
)

// Old replicas are retired by the retire command once the new ones are proven (the smoke check),
// never by Pulumi deleting a replica resource; they drain before they leave the alias.
func TestRetireOldReplicasAfterNginx(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			m := mustDeploy(t, stack, stackConfig(t, stack))
			reps := replicas(m, stack)
			if len(reps) == 0 {
				t.Fatal("no replicas")
			}
			for _, r := range reps {
				if !r.Retain {
					t.Errorf("%s: retainOnDelete = false; Pulumi would stop it itself", r.Name)
				}
			}
			retire := m.named(t, "notes-"+stack+"-app-retire")
			for _, dep := range []string{"notes-" + stack + "-smoke-check"} {
				if !slices.ContainsFunc(retire.Deps, func(d string) bool { return strings.HasSuffix(d, "::"+dep) }) {
					t.Errorf("retire does not wait for %s (deps %v)", dep, retire.Deps)
				}
			}
			create, del := str(prop(retire, "create")), str(prop(retire, "delete"))
			for _, want := range []string{"com.notes-stack.stack=$stack", "com.notes-stack.role=app", "docker kill --signal TERM", "shutdown: drained", "docker network disconnect", "docker network connect", "docker rm -f -v"} {
				if !strings.Contains(create, want) || !strings.Contains(del, want) {
					t.Errorf("retire create/delete lack %q:\n%s\n%s", want, create, del)
				}
			}
			// The stack, network, drain wait (drain delay 5s + shutdown timeout 15s + 5s) and alias
			// wait (nginx's DNS cache 1s + 2s; none on destroy) are arguments of the script, not
			// part of its text.
			args := " sh " + stack + " notes-" + stack + "-net-app 25 3"
			if !strings.Contains(create, args) || !strings.Contains(del, " sh "+stack+" notes-"+stack+"-net-app 25 0") {
				t.Errorf("retire does not pass the stack and grace as arguments:\n%s\n%s", create, del)
			}
			for _, r := range reps {
				name := str(prop(r, "name"))
				if !strings.Contains(create, name) {
					t.Errorf("retire create does not keep the current replica %s:\n%s", name, create)
				}
				if strings.Contains(del, name) {
					t.Errorf("retire delete (destroy) keeps replica %s:\n%s", name, del)
				}
			}
			if stack == "prod" && !strings.HasPrefix(create, "ssh ") {
				t.Errorf("prod retire does not run over ssh: %s", create)
			}
		})
	}
}
