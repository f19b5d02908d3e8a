from distner.cli.main import main

raise SystemExit(main())
