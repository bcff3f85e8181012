"""processor: CSV files -> SQL staging tables -> a deals view -> Pipedrive."""
