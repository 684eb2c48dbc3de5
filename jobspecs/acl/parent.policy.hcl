# The policy of a label parent job (solstice-<label>). A dispatch's
# workload identity names its parent job, so this policy, attached to the
# parent, covers every dispatch of it: its template reads the job's
# secrets from solstice/secrets/<key>, which is outside a job's implicit
# Variable access. `solstice jobs sync` applies it to every parent job it
# registers ("${namespace}" below becomes the namespace synced); by hand:
#
#   sed "s/[$]{namespace}/default/" parent.policy.hcl > /tmp/parent.hcl
#   nomad acl policy apply -namespace default -job solstice-omnios-r151056 \
#     solstice-omnios-r151056-default /tmp/parent.hcl
#
# Read only (Nomad lets read imply listing the paths), and only the
# secrets: a dispatch cannot write them, read other Variables, or do
# anything else through Nomad's API. The token stays on the host: the
# driver never hands it to the guest.
namespace "${namespace}" {

  variables {
    path "solstice/secrets/*" {
      capabilities = ["read"]
    }
  }
}
