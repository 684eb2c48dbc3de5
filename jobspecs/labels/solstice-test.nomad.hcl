# Parent job for runs-on: solstice-test (the Debian-built test guest that
# stands in for an illumos cloud image). Every CI job for this label is a
# dispatch of this job: the shim sends the job plan as payload and meta that
# names the forge task; Nomad queues it until a client with the image has
# room. Edit resources here to change them for the label, then run
# `solstice jobs sync`.
job "solstice-solstice-test" {
  type     = "batch"
  priority = 50

  meta {
    solstice_label   = "solstice-test"
    # solstice run sets a URL the client fetches the repository bundle from.
    solstice_bundle_url = ""
    solstice_aliases = "debian-test"
    # Only tests and demos serve this label: solstice jobs sync registers
    # it only with -test-labels.
    solstice_test_label = "true"
  }

  parameterized {
    payload       = "required"
    meta_required = ["solstice_forge", "solstice_instance", "solstice_task_id", "solstice_job_name", "solstice_secrets_key"]
    meta_optional = ["solstice_repository", "solstice_run", "solstice_bundle_url"]
  }

  # Only clients whose solstice-vm driver offers the image.
  constraint {
    attribute = "${attr.driver.solstice-vm.image.solstice-test}"
    value     = "true"
  }

  group "job" {
    # A CI job is never silently re-run: a failure is the job's result, and
    # a lost node is reported by the shim, not retried behind its back.
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    # Nomad places a lost node's allocation again whatever the reschedule
    # policy says. This holds that placement back (lost + 10m + kill_timeout)
    # so that the shim, which stops the job as soon as Nomad marks it lost,
    # always comes first; a client cut off from the servers that long also
    # stops the VM by itself.
    stop_after_client_disconnect = "10m"

    # A failed job's debug SSH session listens here (only while it lasts,
    # and only where the client's plugin config sets debug_ssh_host).
    network {
      port "debug" {}
    }

    task "job" {
      driver       = "solstice-vm"
      kill_timeout = "60s" # the guest's time to power off after a cancel

      dispatch_payload {
        file = "plan.json"
      }

      # The job's secrets, readable only through this task's identity, land
      # in the task's secrets dir (tmpfs); the driver hands them to the
      # guest agent on stdin.
      template {
        destination = "secrets/job-secrets.json"
        perms       = "0400"
        change_mode = "noop"
        data        = <<-EOT
        {{- with nomadVar (printf "solstice/secrets/%s" (env "NOMAD_META_solstice_secrets_key")) -}}
        {{- .ItemsMap | toJSON -}}
        {{- end -}}
        EOT
      }

      config {
        image        = "solstice-test"
        disk_size    = "4GiB"
        boot_timeout = "5m"
        plan         = "local/plan.json"
        secrets      = "secrets/job-secrets.json"
        bundle       = "${NOMAD_META_solstice_bundle_url}"
        debug_port   = "debug"
      }

      resources {
        cores  = 1
        memory = 1024
      }
    }
  }
}
