"""The subcommands' libraries: report, predict, server, submit, dashboard."""
