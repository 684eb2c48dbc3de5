# The runner shims' policy, attached to the shims' service job
# (solstice-runners), so the shims run on their workload identity and need
# no Nomad token. `solstice jobs sync` applies it for the namespace it
# syncs ("${namespace}" below becomes that namespace); by hand:
#
#   sed "s/[$]{namespace}/default/" shims.policy.hcl > /tmp/shims.hcl
#   nomad acl policy apply -namespace default -job solstice-runners \
#     solstice-runners-default /tmp/shims.hcl
#
# What the shims do, and the capability each needs in Nomad 1.6.3:
#   list the label parents and their dispatches, read their status  list-jobs, read-job
#   dispatch a label's parent job                                    dispatch-job
#   follow alloc/solstice/job/events.jsonl                           read-fs
#   stop a dispatch (cancel in the forge): the shims scale its group
#   to 0, because Job.Deregister needs submit-job, which would let
#   them register any job                                            scale-job
#   job secrets they store and sweep, runner credentials and job
#   records, one debug session per repository (shim/debuglock): Variables
#   under their own prefixes only
# Nothing else: no submit-job, no node, agent, operator or ACL access, no
# other Variables.
namespace "${namespace}" {
  capabilities = ["list-jobs", "read-job", "dispatch-job", "read-fs", "scale-job"]

  variables {
    path "solstice/secrets/*" {
      capabilities = ["write", "read", "destroy", "list"]
    }
    path "solstice/runners/*" {
      capabilities = ["write", "read", "destroy", "list"]
    }
    path "solstice/jobs/*" {
      capabilities = ["write", "read", "destroy", "list"]
    }
    path "solstice/debug/*" {
      capabilities = ["write", "read", "destroy", "list"]
    }
  }
}
