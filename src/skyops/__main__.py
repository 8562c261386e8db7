from skyops.cli import main

main()
