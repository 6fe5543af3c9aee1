"""IBL data through ONE: loading ALF datasets, sessions tables, and a generated demo cache."""
