CREATE TABLE `devices` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`last_seq` integer DEFAULT 0 NOT NULL,
	`max_lamport` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `devices_user_id_idx` ON `devices` (`user_id`);--> statement-breakpoint
CREATE TABLE `entities` (
	`space` text NOT NULL,
	`collection` text NOT NULL,
	`key` text NOT NULL,
	`value` text NOT NULL,
	`stamps` text NOT NULL,
	`base` text,
	`live` text NOT NULL,
	`deleted` integer DEFAULT false NOT NULL,
	`server_seq` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`space`, `collection`, `key`),
	FOREIGN KEY (`space`) REFERENCES `spaces`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `entities_server_seq_unique` ON `entities` (`server_seq`);--> statement-breakpoint
CREATE INDEX `entities_space_server_seq_idx` ON `entities` (`space`,`server_seq`);--> statement-breakpoint
CREATE INDEX `entities_tombstones_idx` ON `entities` (`updated_at`) WHERE "entities"."deleted" = 1;--> statement-breakpoint
CREATE TABLE `members` (
	`space_id` text NOT NULL,
	`user_id` text NOT NULL,
	`role` text NOT NULL,
	PRIMARY KEY(`space_id`, `user_id`),
	FOREIGN KEY (`space_id`) REFERENCES `spaces`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "members_role_known" CHECK("members"."role" IN ('owner', 'member'))
);
--> statement-breakpoint
CREATE INDEX `members_user_id_idx` ON `members` (`user_id`);--> statement-breakpoint
CREATE TABLE `meta` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `ops` (
	`device` text NOT NULL,
	`seq` integer NOT NULL,
	`op_id` text,
	`space` text NOT NULL,
	`collection` text NOT NULL,
	`key` text NOT NULL,
	`result` text NOT NULL,
	`code` text,
	`message` text,
	`server_seq` integer,
	`applied_at` integer NOT NULL,
	PRIMARY KEY(`device`, `seq`),
	FOREIGN KEY (`device`) REFERENCES `devices`(`id`) ON UPDATE no action ON DELETE no action,
	CONSTRAINT "ops_result_known" CHECK("ops"."result" IN ('applied', 'superseded', 'rejected')),
	CONSTRAINT "ops_rejected_has_code" CHECK("ops"."result" <> 'rejected' OR "ops"."code" IS NOT NULL)
);
--> statement-breakpoint
CREATE UNIQUE INDEX `ops_op_id_unique` ON `ops` (`op_id`);--> statement-breakpoint
CREATE TABLE `sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `sessions_user_id_idx` ON `sessions` (`user_id`);--> statement-breakpoint
CREATE TABLE `spaces` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`owner_id` text NOT NULL,
	`personal` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`owner_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `spaces_one_personal_per_owner` ON `spaces` (`owner_id`) WHERE "spaces"."personal" = 1;--> statement-breakpoint
CREATE TABLE `tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`name` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `tokens_user_id_idx` ON `tokens` (`user_id`);--> statement-breakpoint
CREATE TABLE `users` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`password_hash` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `users_name_unique` ON `users` (`name`);