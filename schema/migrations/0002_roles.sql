PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_members` (
	`space_id` text NOT NULL,
	`user_id` text NOT NULL,
	`role` text NOT NULL,
	PRIMARY KEY(`space_id`, `user_id`),
	FOREIGN KEY (`space_id`) REFERENCES `spaces`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "members_role_known" CHECK("__new_members"."role" IN ('owner', 'editor', 'viewer'))
);
--> statement-breakpoint
-- Edited after generation (the one hand-written line): every 'member' of before roles becomes an editor.
INSERT INTO `__new_members`("space_id", "user_id", "role") SELECT "space_id", "user_id", CASE "role" WHEN 'member' THEN 'editor' ELSE "role" END FROM `members`;--> statement-breakpoint
DROP TABLE `members`;--> statement-breakpoint
ALTER TABLE `__new_members` RENAME TO `members`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE INDEX `members_user_id_idx` ON `members` (`user_id`);