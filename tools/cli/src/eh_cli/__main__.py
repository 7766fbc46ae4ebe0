from eh_cli.main import cli

cli()
