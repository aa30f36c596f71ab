"""Class vocabularies, the text-embedding tool and the shipped class-name embeddings."""
